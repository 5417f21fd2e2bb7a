/*
 * The real exception vectors. This block is linked inside the image and copied to PA 0 after
 * the firmware has been quiesced; it is position independent (no branch leaves it except
 * through CTR), so it runs correctly from its copy.
 *
 * Each vector: park r13 in SPRG1, fetch the per-CPU area from SPRG0, save r9-r12 and CTR
 * there, and jump (real mode) to exc_common at its link address with r12 = vector number.
 */
    .section .text.vectors, "ax"
    .balign 256
    .globl vectors_block
vectors_block:

.macro VEC n
    .org vectors_block + \n
    VEC_BODY \n, {PACA_COMMON}
.endm

/* 0x300 jumps wherever the per-CPU area says: exc_common, or hash_fast (hash_page=asm). */
.macro VEC_300
    .org vectors_block + 0x300
    VEC_BODY 0x300, {PACA_T300}
.endm

/* Vectors only 0x20 apart have room for 8 instructions: branch to the body past 0x1800. */
.macro VEC_SHORT n
    .org vectors_block + \n
    b       vec_ool_\n
.endm

.macro VEC_OOL n
vec_ool_\n:
    VEC_BODY \n, {PACA_COMMON}
.endm

.macro VEC_BODY n, target
    mtsprg  1, 13
    mfsprg  13, 0
    std     9, {PACA_SCR}+0(13)
    std     10, {PACA_SCR}+8(13)
    std     11, {PACA_SCR}+16(13)
    std     12, {PACA_SCR}+24(13)
    mfctr   12
    std     12, {PACA_SCR}+32(13)
    ld      12, \target(13)
    mtctr   12
    li      12, \n
    bctr
.endm

    VEC 0x100
    VEC 0x200
    VEC_300
    VEC 0x380
    VEC 0x400
    VEC 0x480
    VEC 0x500
    VEC 0x600
    VEC 0x700
    VEC 0x800
    VEC 0x900
    VEC 0x980
    VEC 0xa00
    VEC 0xb00
    VEC 0xc00
    VEC 0xd00
    VEC_SHORT 0xe00
    VEC_SHORT 0xe20
    VEC_SHORT 0xe40
    VEC_SHORT 0xe60
    VEC_SHORT 0xe80
    VEC_SHORT 0xea0
    VEC_SHORT 0xf00
    VEC_SHORT 0xf20
    VEC_SHORT 0xf40
    VEC_SHORT 0xf60
    VEC_SHORT 0xf80
    VEC 0x1000
    VEC 0x1100
    VEC 0x1200
    VEC 0x1300
    VEC 0x1400
    VEC 0x1500
    VEC 0x1600
    VEC 0x1700
    .org vectors_block + 0x1800
    VEC_OOL 0xe00
    VEC_OOL 0xe20
    VEC_OOL 0xe40
    VEC_OOL 0xe60
    VEC_OOL 0xe80
    VEC_OOL 0xea0
    VEC_OOL 0xf00
    VEC_OOL 0xf20
    VEC_OOL 0xf40
    VEC_OOL 0xf60
    VEC_OOL 0xf80
    .globl vectors_block_end
vectors_block_end:

/*
 * exc_common (real mode, EE=0). In: r12 = vector, r13 = per-CPU area, SPRG1 = r13,
 * per-CPU scratch = r9, r10, r11, r12, CTR.
 *
 * Every exception runs on this CPU's exception stack, never on the interrupted stack: a
 * nested exception (a hash fault inside the decrementer handler, say) stacks below the
 * interrupted handler's r1 and its 288-byte protected zone. So the fault paths touch only
 * bolted memory.
 */
    .section .text.exc_common, "ax"
    .globl exc_common
    .type exc_common, @function
exc_common:
    mfcr    9
    ld      11, {PACA_EXC_BASE}(13)
    ld      10, {PACA_EXC_TOP}(13)
    cmpld   1, 11
    blt     1f
    cmpld   1, 10
    bge     1f
    addi    10, 1, -288             /* nested: below the interrupted handler's red zone */
1:  clrrdi  10, 10, 4
    addi    10, 10, -{FRAME_TOTAL}
    addi    11, 11, 1024            /* keep 1 KiB for the overflow report */
    cmpld   10, 11
    blt     exc_stack_overflow
    std     1, {HDR}+1*8(10)
    mr      1, 10
    std     9, {HDR}+{F_CR}(1)
    std     0, {HDR}+0*8(1)
    std     2, {HDR}+2*8(1)
    std     3, {HDR}+3*8(1)
    std     4, {HDR}+4*8(1)
    std     5, {HDR}+5*8(1)
    std     6, {HDR}+6*8(1)
    std     7, {HDR}+7*8(1)
    std     8, {HDR}+8*8(1)
    ld      9, {PACA_SCR}+0(13)
    std     9, {HDR}+9*8(1)
    ld      9, {PACA_SCR}+8(13)
    std     9, {HDR}+10*8(1)
    ld      9, {PACA_SCR}+16(13)
    std     9, {HDR}+11*8(1)
    ld      9, {PACA_SCR}+24(13)
    std     9, {HDR}+12*8(1)
    mfsprg  9, 1
    std     9, {HDR}+13*8(1)
    ld      9, {PACA_SCR}+32(13)
    std     9, {HDR}+{F_CTR}(1)
    mflr    9
    std     9, {HDR}+{F_LR}(1)
    mfxer   9
    std     9, {HDR}+{F_XER}(1)
    mfsrr0  9
    std     9, {HDR}+{F_NIP}(1)
    std     9, 16(1)                /* the interrupted NIP as this header's "return address" */
    mfsrr1  10
    std     10, {HDR}+{F_MSR}(1)
    mfdar   9
    std     9, {HDR}+{F_DAR}(1)
    mfdsisr 9
    std     9, {HDR}+{F_DSISR}(1)
    std     12, {HDR}+{F_TRAP}(1)
    ld      9, {HDR}+1*8(1)
    std     9, 0(1)                 /* back chain continues into the interrupted code */
    ld      2, {PACA_TOC}(13)
    ld      9, {PACA_KMSR}(13)      /* translation on, EE still off; SRR0/1 are saved */
    mtmsrd  9
    isync
    addi    3, 1, {HDR}
    bl      exception_entry
    nop
    .globl exc_return
exc_return:
    /*
     * r14-r31 were not saved: every handler preserves them (ELFv2 non-volatiles), which keeps
     * the hash-fault path short. A handler that wants the full register state (the oops
     * report) returns non-zero: the non-volatiles still hold the interrupted values here, so
     * store them now and call the slow path, which does not return.
     */
    cmpdi   3, 0
    beq+    1f
    std     14, {HDR}+14*8(1)
    std     15, {HDR}+15*8(1)
    std     16, {HDR}+16*8(1)
    std     17, {HDR}+17*8(1)
    std     18, {HDR}+18*8(1)
    std     19, {HDR}+19*8(1)
    std     20, {HDR}+20*8(1)
    std     21, {HDR}+21*8(1)
    std     22, {HDR}+22*8(1)
    std     23, {HDR}+23*8(1)
    std     24, {HDR}+24*8(1)
    std     25, {HDR}+25*8(1)
    std     26, {HDR}+26*8(1)
    std     27, {HDR}+27*8(1)
    std     28, {HDR}+28*8(1)
    std     29, {HDR}+29*8(1)
    std     30, {HDR}+30*8(1)
    std     31, {HDR}+31*8(1)
    addi    3, 1, {HDR}
    bl      exception_slow
    nop
1:
    li      9, 0
    mtmsrd  9, 1                    /* EE=0, RI=0: SRR0/1 are about to be live */
    ld      9, {HDR}+{F_NIP}(1)
    mtsrr0  9
    ld      9, {HDR}+{F_MSR}(1)
    mtsrr1  9
    ld      9, {HDR}+{F_CTR}(1)
    mtctr   9
    ld      9, {HDR}+{F_LR}(1)
    mtlr    9
    ld      9, {HDR}+{F_XER}(1)
    mtxer   9
    ld      9, {HDR}+{F_CR}(1)
    mtcr    9
    ld      0, {HDR}+0*8(1)
    ld      2, {HDR}+2*8(1)
    ld      3, {HDR}+3*8(1)
    ld      4, {HDR}+4*8(1)
    ld      5, {HDR}+5*8(1)
    ld      6, {HDR}+6*8(1)
    ld      7, {HDR}+7*8(1)
    ld      8, {HDR}+8*8(1)
    ld      9, {HDR}+9*8(1)
    ld      10, {HDR}+10*8(1)
    ld      11, {HDR}+11*8(1)
    ld      12, {HDR}+12*8(1)
    ld      13, {HDR}+13*8(1)
    ld      1, {HDR}+1*8(1)
    rfid
    /* A size makes debuggers name PCs in here exc_common, not a size-less label at the same
     * address (vectors_block_end/__vectors_end when the linker places this section right after
     * the vectors). */
    .size exc_common, . - exc_common

/* Exception stack exhausted: report from the reserved kilobyte (translated) and stop. */
exc_stack_overflow:
    ld      1, {PACA_EXC_BASE}(13)
    addi    1, 1, 1024-112
    li      0, 0
    std     0, 0(1)
    ld      2, {PACA_TOC}(13)
    ld      9, {PACA_KMSR}(13)
    mtmsrd  9
    isync
    mfsrr0  3
    mr      4, 12
    bl      exception_stack_overflow
    nop
9:  b       9b

/*
 * Probes: loads and stores that may fault on purpose. exception_entry recognises a fault at
 * a probe instruction and resumes at its fixup with r3 = 1 (the exception-table idea).
 */
    .section .text.probe, "ax"
    .globl probe_load64, probe_load64_insn, probe_store64, probe_store64_insn, probe_fixup
probe_load64:                       /* (addr) -> r3 = 0 ok, r4 = value */
probe_load64_insn:
    ld      4, 0(3)
    li      3, 0
    blr
probe_store64:                      /* (addr, value) -> r3 = 0 ok */
probe_store64_insn:
    std     4, 0(3)
    li      3, 0
    blr
probe_fixup:
    li      3, 1
    blr
