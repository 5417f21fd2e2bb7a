/*
 * opal_call(r3 = token, r4..r9 = arguments 0..5) -> r3 = OPAL status.
 *
 * OPAL (skiboot) runs in real mode, big-endian, with r2 = its base, entered by hrfid; it
 * returns with a plain blr (BH hint 01: it was not entered by bl), keeps r1 and r13-r31 and
 * clobbers the rest like a C function (its entry saves r1, r13 and r16 itself). So the caller
 * may be translated or not: the MSR it had comes back after the call. Every kernel address is
 * valid in both modes (the linear mapping is PA + 0xc000..., and real mode ignores the top EA
 * bits), so the return label and the stack work on either side of the switch. EE is off for
 * the duration: OPAL must not be interrupted into the kernel's handlers. The per-CPU opal_sp
 * holds this r1 while OPAL runs on its own stack, so that a system reset or machine check
 * taken inside OPAL stacks its frame below the caller's (exc_common); a nested call keeps the
 * outer one's value in its frame.
 */
    .section .text.opal, "ax"
    .globl opal_call
    .type opal_call, @function
opal_call:
    mflr    0
    std     0, 16(1)
    stdu    1, -64(1)
    std     2, 32(1)
    mfmsr   11
    std     11, 40(1)
    ld      12, {PACA_OPAL_SP}(13)
    std     12, 48(1)
    std     1, {PACA_OPAL_SP}(13)
    mr      0, 3                    /* token */
    mr      3, 4
    mr      4, 5
    mr      5, 6
    mr      6, 7
    mr      7, 8
    mr      8, 9
    li      12, {MSR_IR_DR}
    ori     12, 12, {MSR_EE}
    andc    11, 11, 12
    mtspr   {SPR_HSRR1}, 11                 /* HSRR1: this MSR in real mode, EE off */
    LOAD64  12, OPAL_FW
    ld      2, 0(12)                /* OPAL base */
    ld      12, 8(12)               /* OPAL entry */
    mtspr   {SPR_HSRR0}, 12                 /* HSRR0 */
    LOAD64  12, opal_return
    mtlr    12
    hrfid
opal_return:
    ld      12, 48(1)
    std     12, {PACA_OPAL_SP}(13)
    ld      2, 32(1)
    ld      11, 40(1)
    mtmsrd  11                      /* translation and EE as before the call */
    isync
    addi    1, 1, 64
    ld      0, 16(1)
    mtlr    0
    blr
    .size opal_call, . - opal_call
