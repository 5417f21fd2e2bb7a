/*
 * A minimal way into problem state and back, for tests of user accesses to kernel pages.
 *
 * user_enter(r3 = entry, r4 = arg, r5 = MSR) saves the non-volatile state on the kernel
 * stack, parks r1 in the per-CPU area and rfid's to `entry` with r3 = arg. The kernel comes
 * back at user_return when the user code makes a system call or takes a fault the kernel
 * will not resolve (src/run/user.rs rewrites that exception's frame), with r3 = result.
 */
    .section .text.user, "ax"
    .globl user_enter, user_return
user_enter:
    mflr    0
    std     0, 16(1)
    mfcr    0
    std     0, 8(1)
    stdu    1, -176(1)
    std     2, 24(1)
    std     14, 32(1)
    std     15, 40(1)
    std     16, 48(1)
    std     17, 56(1)
    std     18, 64(1)
    std     19, 72(1)
    std     20, 80(1)
    std     21, 88(1)
    std     22, 96(1)
    std     23, 104(1)
    std     24, 112(1)
    std     25, 120(1)
    std     26, 128(1)
    std     27, 136(1)
    std     28, 144(1)
    std     29, 152(1)
    std     30, 160(1)
    std     31, 168(1)
    std     1, {PACA_USER_SP}(13)
    li      0, 0
    mtmsrd  0, 1                    /* EE=0, RI=0 while SRR0/1 are live */
    mtsrr0  3
    mtsrr1  5
    mr      3, 4
    li      1, 0
    rfid
user_return:
    ld      2, 24(1)
    ld      14, 32(1)
    ld      15, 40(1)
    ld      16, 48(1)
    ld      17, 56(1)
    ld      18, 64(1)
    ld      19, 72(1)
    ld      20, 80(1)
    ld      21, 88(1)
    ld      22, 96(1)
    ld      23, 104(1)
    ld      24, 112(1)
    ld      25, 120(1)
    ld      26, 128(1)
    ld      27, 136(1)
    ld      28, 144(1)
    ld      29, 152(1)
    ld      30, 160(1)
    ld      31, 168(1)
    addi    1, 1, 176
    ld      0, 8(1)
    mtcr    0
    ld      0, 16(1)
    mtlr    0
    blr

/* The user-mode payloads, copied into a USER|EXEC page: load from r3 (or store r3 there),
 * then `sc`. */
    .globl user_payload, user_payload_end, user_payload_store, user_payload_store_end
user_payload:
    ld      4, 0(3)
    li      3, 0
    sc
user_payload_end:
user_payload_store:
    std     3, 0(3)
    li      3, 0
    sc
user_payload_store_end:
