/*
 * The exception vectors and the paths they take.
 *
 * Two vector blocks, both copied into low memory at boot (src/arch/ppc64/boot.rs):
 * - the real-mode block, at PA 0: interrupts taken with translation off (early boot, a CPU
 *   starting, system reset, machine check). Position independent: every vector leaves through
 *   CTR to the generic path.
 * - the AIL block, linked where it runs, at 0xc000000000004000 (PA 0x4000): with LPCR[AIL]=3
 *   (H_SET_MODE) every interrupt taken with translation on arrives here with translation still
 *   on, so nothing has to switch modes. Its 0x300 is the hash-fault entry (a lean save of the
 *   volatile registers, then Rust) and its 0x380 the segment-miss handler (assembly, no
 *   frame); everything else takes the generic path.
 *
 * Scratch areas in the per-CPU area (r13, found through SPRG0; the interrupted r13 is parked
 * in SPRG1): ex_gen for the generic vectors, ex_hash for 0x300, ex_slb for 0x380. The only
 * interrupts that can arrive while one of these paths runs are system reset and machine
 * check, which never return (they stop the machine or oops), so the scratch words and SPRG1
 * are never overwritten under a path that still needs them.
 *
 * Placeholders in braces are constants passed from Rust (src/arch/ppc64/boot.rs).
 */

/* Generic vector, first half: r13 = per-CPU area, SPRG1 = interrupted r13. */
.macro VEC_ENTER
    mtsprg  1, 13
    mfsprg  13, 0
.endm

/* Generic vector, second half: park r9-r12 and CTR, go to exc_common with r12 = vector. */
.macro VEC_SAVE n
    std     9, {EX_GEN}+0(13)
    std     10, {EX_GEN}+8(13)
    std     11, {EX_GEN}+16(13)
    std     12, {EX_GEN}+24(13)
    VEC_GO  \n
.endm

.macro VEC_GO n
    mfctr   12
    std     12, {EX_GEN}+32(13)
    ld      12, {PACA_COMMON}(13)
    mtctr   12
    li      12, \n
    bctr
.endm

.macro VEC_BODY n
    VEC_ENTER
    VEC_SAVE \n
.endm

/* Registers to and from an exception frame at r1 (ExcFrame after the ABI header). */
.macro SAVE_GPRS regs:vararg
    .irp r, \regs
    std     \r, {HDR}+\r*8(1)
    .endr
.endm
.macro REST_GPRS regs:vararg
    .irp r, \regs
    ld      \r, {HDR}+\r*8(1)
    .endr
.endm

/* A vector at offset n of a block; vectors only 0x20 apart branch to a body past 0x1800. */
.macro VEC blk, n
    .org \blk + \n
    VEC_BODY \n
.endm
.macro VEC_SHORT blk, n
    .org \blk + \n
    b       \blk\()_ool_\n
.endm
.macro VEC_OOL blk, n
\blk\()_ool_\n:
    VEC_BODY \n
.endm

/*
 * A hypervisor interrupt (only on powernv, where the kernel runs with MSR[HV]): the state is
 * in HSRR0/1. Copied to SRR0/1, everything after is the generic path, which returns with
 * rfid (with MSR[HV] = 1, rfid restores HV from SRR1 like hrfid). SRR0/1 are free here: an
 * interrupt that arrives where they are live (MSR[RI] = 0) is reported as unrecoverable.
 */
.macro HVEC_OOL blk, n
\blk\()_ool_\n:
    VEC_ENTER
    std     9, {EX_GEN}+0(13)
    std     10, {EX_GEN}+8(13)
    std     11, {EX_GEN}+16(13)
    std     12, {EX_GEN}+24(13)
    mfspr   9, {SPR_HSRR0}
    mtsrr0  9
    mfspr   9, {SPR_HSRR1}
    mtsrr1  9
    VEC_GO  \n
.endm

/* ---------------------------------------------------------------- real-mode block (PA 0) */
    .section .text.vectors, "ax"
    .balign 256
    .globl vectors_block
vectors_block:
    .irp n, 0x100, 0x200, 0x300, 0x380, 0x400, 0x480, 0x500, 0x600, 0x700, 0x800, 0x900, 0x980, 0xa00, 0xb00, 0xc00, 0xd00
    VEC vectors_block, \n
    .endr
    .irp n, 0xe00, 0xe20, 0xe40, 0xe60, 0xe80, 0xea0, 0xf00, 0xf20, 0xf40, 0xf60, 0xf80
    VEC_SHORT vectors_block, \n
    .endr
    .irp n, 0x1000, 0x1100, 0x1200, 0x1300, 0x1400, 0x1500, 0x1600, 0x1700
    VEC vectors_block, \n
    .endr
    .org vectors_block + 0x1800
    .irp n, 0xe00, 0xe20, 0xe40, 0xe60, 0xe80, 0xea0, 0xf80
    HVEC_OOL vectors_block, \n
    .endr
    .irp n, 0xf00, 0xf20, 0xf40, 0xf60
    VEC_OOL vectors_block, \n
    .endr
    .globl vectors_block_end
vectors_block_end:

/* ---------------------------------------------------- AIL block (0xc000000000004000) */
    .section .vectors_virt, "ax"
    .globl vvec_block
vvec_block:
    VEC vvec_block, 0x100
    VEC vvec_block, 0x200

    /*
     * 0x300 data storage: the hash fault. Straight to the lean entry (hash_fault_entry, in
     * .text), which checks MSR[RI] once SRR1 is in a register anyway.
     */
    .org vvec_block + 0x300
    .globl hash_vector
hash_vector:
    mtsprg  1, 13
    mfsprg  13, 0
    std     11, {EX_HASH}+0(13)
    .globl hash_vector_branch
hash_vector_branch:                 /* patched to exc_fault_ceiling by bench=ceiling only */
    b       hash_fault_entry

    /* 0x380 data segment: install the segment (slb_miss, below). */
    .org vvec_block + 0x380
    .globl slb_vector
slb_vector:
    mtsprg  1, 13
    mfsprg  13, 0
    std     9, {EX_SLB}+0(13)
    std     10, {EX_SLB}+8(13)
    std     11, {EX_SLB}+16(13)
    std     12, {EX_SLB}+24(13)
    mfcr    12
    mfdar   10
    /* Patched to `b slb_miss_other` while exceptions are traced (src/trace/ring.rs): the
     * generic path, whose entry and exit are trace points, handles the miss then. */
    .globl slb_vector_branch
slb_vector_branch:
    b       slb_miss

    .irp n, 0x400, 0x480, 0x500, 0x600, 0x700, 0x800, 0x900, 0x980, 0xa00, 0xb00, 0xc00, 0xd00
    VEC vvec_block, \n
    .endr
    .irp n, 0xe00, 0xe20, 0xe40, 0xe60, 0xe80, 0xea0, 0xf00, 0xf20, 0xf40, 0xf60, 0xf80
    VEC_SHORT vvec_block, \n
    .endr
    .irp n, 0x1000, 0x1100, 0x1200, 0x1300, 0x1400, 0x1500, 0x1600, 0x1700
    VEC vvec_block, \n
    .endr
    .org vvec_block + 0x1800
    .irp n, 0xe00, 0xe20, 0xe40, 0xe60, 0xe80, 0xea0, 0xf80
    HVEC_OOL vvec_block, \n
    .endr
    .irp n, 0xf00, 0xf20, 0xf40, 0xf60
    VEC_OOL vvec_block, \n
    .endr

    /*
     * The segment miss: r10 = EA, r12 = CR, r9-r12 parked in ex_slb. For a vmalloc or I/O
     * address within the page tables' span, load the segment's RS word from the segment table
     * (mm/slbe.rs computes it), write it into the next non-bolted slot (round robin) and
     * return; the re-executed access then takes its hash fault if the page has no HPTE yet.
     * Anything else (NULL, user, wild addresses) goes the generic way to an oops.
     */
    .globl slb_miss
slb_miss:
    srdi    11, 10, 60
    addi    11, 11, -0xd            /* region: 0 vmalloc, 1 I/O */
    cmpldi  11, 1
    bgt-    slb_miss_other
    rldicl. 9, 10, 64-39, 43        /* EA bits 59:39 set: beyond the page tables */
    bne-    slb_miss_other
    rldicl  9, 10, 64-28, 64-11     /* segment in the region: EA bits 38:28 */
    rldimi  9, 11, 11, 52           /* | region << 11: the table index */
    sldi    9, 9, 3
    ld      11, {SEG_TABLE}(13)
    ldx     9, 11, 9                /* RS: VSID | Kp */
    ld      11, {SLB_NEXT}(13)
    rldicr  10, 10, 0, 35           /* RB: ESID | V | slot */
    or      10, 10, 11
    oris    10, 10, {SLB_V_HI}
    slbmte  9, 10
    addi    11, 11, 1               /* next victim, skipping the bolted slots */
    ld      9, {SLB_SIZE}(13)
    cmpld   11, 9
    blt     1f
    li      11, {BOLTED_SLB}
1:  std     11, {SLB_NEXT}(13)
    ld      9, {STATS}+{C_DSEG}(13)
    addi    9, 9, 1
    std     9, {STATS}+{C_DSEG}(13)
    mtcr    12
    ld      9, {EX_SLB}+0(13)
    ld      10, {EX_SLB}+8(13)
    ld      11, {EX_SLB}+16(13)
    ld      12, {EX_SLB}+24(13)
    mfsprg  13, 1                   /* rfid is context synchronizing: the new entry is in use */
    rfid
    .globl slb_miss_other
slb_miss_other:
    mtcr    12
    ld      9, {EX_SLB}+0(13)
    ld      10, {EX_SLB}+8(13)
    ld      11, {EX_SLB}+16(13)
    ld      12, {EX_SLB}+24(13)
    VEC_SAVE 0x380
    .globl vvec_block_end
vvec_block_end:

/* ------------------------------------------------------------- the hash-fault entry */
/*
 * In: r13 = per-CPU area, SPRG1 = interrupted r13, ex_hash = r11; translation on,
 * EE = RI = 0. The frame is this CPU's fixed hash frame: a hash fault never interrupts its
 * own handler (checked above), so the frame is always free. Only what the ELFv2 ABI lets the
 * handler clobber is saved: r0, r2-r12, CR, LR, CTR, XER, plus SRR0/SRR1 (an hcall, `sc 1`,
 * may overwrite them). r14-r31 are saved only on the way to the
 * slow path, while they still hold the interrupted values.
 *
 * `do_hash_fault*` (src/hash/fault.rs) leaves its verdict in the per-CPU `hash_verdict`:
 * 0 when the access can be re-executed, else why it needs the full exception path (a fixup,
 * a user-mode fault, an oops). The `bl` at
 * hash_fault_call is patched to the entry of the selected hash_page design (see
 * hash_fault_designs), so choosing one costs the fault path nothing.
 */
    .section .text.hash_fault, "ax"
    .globl hash_fault_entry, hash_fault_call, hash_fault_exit
    .type hash_fault_entry, @function
hash_fault_entry:
    ld      11, {HASH_FRAME}(13)
    std     1, 0(11)                /* back chain: the interrupted r1 (the frame's r1 slot is */
    mr      1, 11                   /* filled only on the way to the slow path) */
    SAVE_GPRS 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12
    ld      11, {EX_HASH}+0(13)
    std     11, {HDR}+11*8(1)
    mfcr    11
    std     11, {HDR}+{F_CR}(1)
    mflr    11
    std     11, {HDR}+{F_LR}(1)
    mfctr   11
    std     11, {HDR}+{F_CTR}(1)
    mfxer   11
    std     11, {HDR}+{F_XER}(1)
    mfsrr0  11
    std     11, {HDR}+{F_NIP}(1)
    mfsrr1  5
    std     5, {HDR}+{F_MSR}(1)
    /*
     * MSR[RI] of the interrupted context is 0 only inside exception entry/exit code and
     * inside this handler itself: a hash fault there has just overwritten the frame of the
     * one it interrupted, so it is unrecoverable. `tdeqi` traps without touching CR; the
     * program check (0x700) reports it, with the nested fault's SRR0/DAR in this frame
     * (exception.rs, `hash_nested_trap`).
     */
    rldicl  11, 5, 64-{MSR_RI_SHIFT}, 63
    .globl hash_nested_trap
hash_nested_trap:
    tdeqi   11, 0
    mfdar   3                       /* DAR: argument, and read back by slow paths */
    std     3, {HDR}+{F_DAR}(1)
    mfdsisr 4                       /* DSISR: argument only; the slow path stores it */
    ld      2, {PACA_TOC}(13)
hash_fault_call:
    bl      do_hash_fault
    ld      4, {HASH_VERDICT}(13)
    cmpdi   4, 0
    bne-    hash_fault_slow
hash_fault_exit:
    ld      11, {HDR}+{F_LR}(1)
    mtlr    11
    ld      11, {HDR}+{F_CTR}(1)
    mtctr   11
    ld      11, {HDR}+{F_XER}(1)
    mtxer   11
    ld      11, {HDR}+{F_NIP}(1)
    mtsrr0  11
    ld      11, {HDR}+{F_MSR}(1)
    mtsrr1  11
    stdcx.  11, 0, 1                /* drop any reservation the handler left (clobbers CR0) */
    ld      11, {HDR}+{F_CR}(1)
    mtcr    11
    REST_GPRS 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
    ld      1, 0(1)
    mfsprg  13, 1
    rfid
hash_fault_slow:
    li      0, 0                    /* take the verdict (in r4, the second argument below) */
    std     0, {HASH_VERDICT}(13)
    SAVE_GPRS 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    mfsprg  0, 1
    std     0, {HDR}+13*8(1)
    ld      0, 0(1)
    std     0, {HDR}+1*8(1)
    mfdsisr 0                       /* nothing since the fault can have changed it */
    std     0, {HDR}+{F_DSISR}(1)
    addi    3, 1, {HDR}
    bl      hash_fault_slow_path    /* returns only if the access may be re-executed */
    .globl hash_fault_slow_ret
hash_fault_slow_ret:
    b       exc_restore             /* restores from the frame, r13 included */
    .size hash_fault_entry, . - hash_fault_entry

    /*
     * The entries the `bl` at hash_fault_call can be patched to, one per hash_page design and
     * HPT backend (pseries' `Design::SLOTS`, then powernv's, in `Design` order),
     * assembled as calls so the linker resolves each to its local entry point (ELFv2). Never
     * executed: src/hash/fault.rs copies the target out of them.
     */
    .globl hash_fault_designs
hash_fault_designs:
    bl      do_hash_fault
    bl      do_hash_fault_locked
    bl      do_hash_fault_patch2003
    bl      do_hash_fault_cas2
    bl      do_hash_fault_ceiling
    bl      do_hash_fault_inject
    /* powernv (the kernel's own table): the same designs, Design::SLOTS entries further;
       no ceiling or hypervisor-call injection there, so those slots hold the default */
    bl      do_hash_fault_native
    bl      do_hash_fault_native_locked
    bl      do_hash_fault_native_patch2003
    bl      do_hash_fault_native_cas2
    bl      do_hash_fault_native
    bl      do_hash_fault_native

/* ---------------------------------------------------------------- the generic path */
/*
 * exc_common (either translation mode, EE=0). In: r12 = vector, r13 = per-CPU area,
 * SPRG1 = r13, ex_gen = r9, r10, r11, r12, CTR.
 *
 * Every generic exception runs on this CPU's exception stack, never on the interrupted stack:
 * a nested one (a hash fault's slow path excepted, everything nests here) stacks below the
 * interrupted handler's r1 and its 288-byte protected zone. An exception that interrupted the
 * hash-fault handler (a system reset, an unrecoverable fault) places its frame as if it had
 * interrupted whatever the hash fault interrupted, so no live frame is overwritten.
 */
    .section .text.exc_common, "ax"
    .globl exc_common
    .type exc_common, @function
exc_common:
    std     12, {EX_GEN}+40(13)     /* the vector, until the frame exists */
    mfcr    9
    mr      12, 1                   /* the stack the frame must go below ... */
    ld      11, {PACA_OPAL_SP}(13)  /* ... or, inside an OPAL call (powernv), its caller's */
    cmpdi   11, 0
    beq+    3f
    mr      12, 11
3:  ld      11, {HASH_FRAME}(13)
    subf    10, 11, 12
    addi    10, 10, {HASH_STACK_SIZE}-{FRAME_TOTAL}
    cmpldi  10, {HASH_STACK_SIZE}
    bge+    2f
    ld      12, {HDR}+1*8(11)       /* on the hash stack: what the hash fault interrupted */
2:  ld      11, {PACA_EXC_BASE}(13)
    ld      10, {PACA_EXC_TOP}(13)
    cmpld   12, 11
    blt     1f
    cmpld   12, 10
    bge     1f
    addi    10, 12, -288            /* nested: below the interrupted handler's red zone */
1:  clrrdi  10, 10, 4
    addi    10, 10, -{FRAME_TOTAL}
    addi    11, 11, 1024            /* keep 1 KiB for the overflow report */
    cmpld   10, 11
    blt     exc_stack_overflow
    std     1, {HDR}+1*8(10)
    mr      1, 10
    std     9, {HDR}+{F_CR}(1)
    SAVE_GPRS 0, 2, 3, 4, 5, 6, 7, 8
    ld      9, {EX_GEN}+0(13)
    std     9, {HDR}+9*8(1)
    ld      9, {EX_GEN}+8(13)
    std     9, {HDR}+10*8(1)
    ld      9, {EX_GEN}+16(13)
    std     9, {HDR}+11*8(1)
    ld      9, {EX_GEN}+24(13)
    std     9, {HDR}+12*8(1)
    mfsprg  9, 1
    std     9, {HDR}+13*8(1)
    ld      9, {EX_GEN}+32(13)
    std     9, {HDR}+{F_CTR}(1)
    ld      12, {EX_GEN}+40(13)
    std     12, {HDR}+{F_TRAP}(1)
    mflr    9
    std     9, {HDR}+{F_LR}(1)
    mfxer   9
    std     9, {HDR}+{F_XER}(1)
    mfsrr0  9
    std     9, {HDR}+{F_NIP}(1)
    mfsrr1  10
    std     10, {HDR}+{F_MSR}(1)
    mfdar   9
    std     9, {HDR}+{F_DAR}(1)
    mfdsisr 9
    std     9, {HDR}+{F_DSISR}(1)
    ld      9, {HDR}+1*8(1)
    std     9, 0(1)                 /* back chain continues into the interrupted code */
    ld      2, {PACA_TOC}(13)
    ld      9, {PACA_KMSR}(13)      /* translation on, EE still off; SRR0/1 are saved */
    mtmsrd  9
    isync
    addi    3, 1, {HDR}
    bl      exception_entry
    .globl exc_return
exc_return:
    /*
     * r14-r31 were not saved: every handler preserves them (ELFv2 non-volatiles). A handler
     * that wants the full register state (the oops report) returns non-zero: the
     * non-volatiles still hold the interrupted values here, so store them now and call the
     * slow path, which does not return.
     */
    cmpdi   3, 0
    beq+    exc_restore
    SAVE_GPRS 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    addi    3, 1, {HDR}
    bl      exception_slow
    .globl exc_restore
exc_restore:
    li      9, 0
    mtmsrd  9, 1                    /* EE=0, RI=0: SRR0/1 are about to be live */
    stdcx.  9, 0, 1                 /* drop any reservation the handler left */
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
    REST_GPRS 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
    ld      1, {HDR}+1*8(1)
    rfid
    /* A size makes debuggers name PCs in here exc_common, not a size-less label at the same
     * address. */
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
    ld      4, {EX_GEN}+40(13)
    bl      exception_stack_overflow
9:  b       9b

/*
 * Probes: loads and stores that may fault on purpose. The exception path recognises a fault
 * at a probe instruction and resumes at its fixup with r3 = 1 (the exception-table idea).
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

/*
 * probe_exec(addr): calls the code at addr. r3 = 0 when it returned, 1 when the kernel refused
 * the fetch of its first instruction: exception.rs recognises a 0x400 whose LR is
 * probe_exec_ret and whose NIP is CTR (the branch target) and resumes at probe_exec_fixup.
 */
    .globl probe_exec, probe_exec_ret, probe_exec_fixup
probe_exec:
    mflr    0
    std     0, 16(1)
    stdu    1, -32(1)
    mtctr   3
    mr      12, 3                   /* ELFv2: r12 = the callee's global entry */
    bctrl
probe_exec_ret:
    li      3, 0
probe_exec_out:
    addi    1, 1, 32
    ld      0, 16(1)
    mtlr    0
    blr
probe_exec_fixup:
    li      3, 1
    b       probe_exec_out

/* ------------------------------------------------------------- the ceiling benchmark */
/*
 * What the platform costs with nothing of ours in it (src/run/bench.rs, `bench=ceiling`):
 * while a CPU's generic-path pointer (PACA exc_common, which every generic vector jumps
 * through) names this entry, a system call (0xc00) returns at once — the cheapest exception
 * QEMU delivers and returns from. Any other vector goes on to exc_common as usual.
 * In: as exc_common (r12 = vector, r13 = per-CPU area, SPRG1 = r13, ex_gen = r9-r12, CTR).
 */
    .section .text.exc_ceiling, "ax"
    .globl exc_ceiling
    .type exc_ceiling, @function
exc_ceiling:
    mfcr    9                       /* r9 is parked: the compare must not change CR */
    cmpldi  12, 0xc00
    bne-    1f
    mtcr    9
    ld      9, {EX_GEN}+32(13)
    mtctr   9
    ld      9, {EX_GEN}+0(13)
    ld      10, {EX_GEN}+8(13)
    ld      11, {EX_GEN}+16(13)
    ld      12, {EX_GEN}+24(13)
    mfsprg  13, 1
    rfid                            /* SRR0 is already the instruction after the `sc` */
1:  mtcr    9
    b       exc_common
    .size exc_ceiling, . - exc_ceiling

/*
 * The fault ceiling (src/run/bench.rs, `ceiling_fault`): a hash fault's loop shape with
 * nothing of ours in it. While hash_vector's branch is patched here, a data storage interrupt
 * on the page that this CPU's next prepared record names makes that record's H_ENTER (an HPTE
 * computed before the window) and returns: the store re-executes and QEMU finds the entry.
 * That is what every hash fault costs the platform — the failed translation, the 0x300, one
 * H_ENTER, the rfid, the second translation — without the kernel's part: no register frame,
 * no page-table walk, no PTE update, no hash. It saves only what it uses: QEMU's hypercalls
 * write r3 and their return registers (r4 for H_ENTER) and nothing else, and keep SRR0/1
 * (hw/ppc/spapr_hcall.c, powerpc_excp_books), which a PAPR hypervisor does too.
 * Any other fault (another page, or an H_ENTER that failed) goes on to hash_fault_entry with
 * the record left in place, so the benchmark sees it (records consumed != stores).
 * In: as hash_fault_entry (r13 = per-CPU area, SPRG1 = r13, r11 parked in ex_hash[0]).
 * Record: page, group index × 8 (in) / the slot H_ENTER chose (out), HPTE v, HPTE r.
 */
    .section .text.exc_fault_ceiling, "ax"
    .globl exc_fault_ceiling
    .type exc_fault_ceiling, @function
exc_fault_ceiling:
    std     3, {EX_CEIL}+0(13)
    std     4, {EX_CEIL}+8(13)
    mfcr    3
    std     3, {EX_CEIL}+40(13)
    ld      11, {PACA_CEIL_NEXT}(13)
    mfdar   3
    ld      4, 0(11)
    xor     3, 3, 4
    srdi.   3, 3, 12
    bne-    2f                      /* not the record's page */
    std     5, {EX_CEIL}+16(13)
    std     6, {EX_CEIL}+24(13)
    std     7, {EX_CEIL}+32(13)
    li      3, {H_ENTER}
    li      4, 0
    ld      5, 8(11)
    ld      6, 16(11)
    ld      7, 24(11)
    sc      1
    ld      5, {EX_CEIL}+16(13)
    ld      6, {EX_CEIL}+24(13)
    ld      7, {EX_CEIL}+32(13)
    cmpdi   3, 0
    bne-    2f                      /* refused: the real path inserts it */
    std     4, 8(11)
    addi    11, 11, 32
    std     11, {PACA_CEIL_NEXT}(13)
    ld      3, {EX_CEIL}+40(13)
    mtcr    3
    ld      3, {EX_CEIL}+0(13)
    ld      4, {EX_CEIL}+8(13)
    ld      11, {EX_HASH}+0(13)
    mfsprg  13, 1
    rfid
2:  ld      3, {EX_CEIL}+40(13)
    mtcr    3
    ld      3, {EX_CEIL}+0(13)
    ld      4, {EX_CEIL}+8(13)
    b       hash_fault_entry
    .size exc_fault_ceiling, . - exc_fault_ceiling
