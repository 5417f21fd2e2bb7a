/*
 * Firmware entry and the switch to translated mode.
 *
 * QEMU's pseries loader enters at the first byte of the image (PA 0x400000) in real mode,
 * big-endian, MSR = 0 (VOF) or 0x2000 (SLOF): 32-bit mode. r5 holds the Open Firmware
 * client-interface entry. Nothing else can be trusted (no device-tree pointer).
 *
 * The early phase runs in real mode at the physical address (NIP 0x4xxxxx), because the
 * firmware's 32-bit client interface returns through 32-bit saves of LR. Link addresses
 * (0xc000...) also work in real mode: the CPU ignores the top four EA bits there.
 *
 * skiboot (powernv) enters at the same first byte instead, but in 64-bit real mode with
 * MSR[HV] and wherever it loaded the file: it executes the ELF in place at QEMU's load address
 * (0x20000000 + the file offset of _start), with r3 = the flattened device tree, r5 = 0,
 * r8/r9 = OPAL base/entry. `opal_start` copies the loadable segments to where the pseries
 * loader would have put them (LMA + 0x400000, see linker.ld) and continues there.
 *
 * Placeholders in braces are constants passed from Rust (src/arch/ppc64/boot.rs), so the
 * per-CPU and hand-off layouts have exactly one definition.
 */
.macro LOAD64 r, sym
    lis     \r, \sym@highest
    ori     \r, \r, \sym@higher
    rldicr  \r, \r, 32, 31
    oris    \r, \r, \sym@high
    ori     \r, \r, \sym@l
.endm

/* H_ENTER(flags 0, ptex r26, v r27, r r28); CR0 = (status == 0). */
.macro H_ENTER_R26_R27_R28
    li      3, {H_ENTER}
    li      4, 0
    mr      5, 26
    mr      6, 27
    mr      7, 28
    sc      1
    cmpdi   3, 0
.endm

/* Clear BSS, set the TOC, the boot stack (addressed physically) and r13 = CPU 0's PACA. */
.macro EARLY_SETUP
    LOAD64  3, __bss_start
    LOAD64  4, __bss_end
    li      0, 0
1:  cmpld   3, 4
    bge     2f
    std     0, 0(3)
    addi    3, 3, 8
    b       1b
2:
    LOAD64  2, .TOC.
    LOAD64  1, boot_stack_top
    clrldi  1, 1, 4
    li      0, 0
    stdu    0, -112(1)              /* NULL back chain ends every backtrace */
    LOAD64  13, PACA_ARRAY
    mtsprg  0, 13
.endm

    .section .text.entry, "ax"
    .globl _start
_start:
    cmpdi   5, 0                    /* skiboot passes no client interface */
    beq     opal_start
    mfmsr   11
    li      12, 1
    rldicr  12, 12, 63, 0           /* MSR[SF]: everything below assumes 64-bit mode */
    or      11, 11, 12
    mtmsrd  11
    isync

    mr      31, 5                   /* OF client-interface entry, kept across the BSS clear */
    /* Boot stack addressed physically: the 32-bit firmware saves r1 with stw. */
    EARLY_SETUP
    mr      3, 31
    bl      early_main              /* Rust, real mode: device tree, quiesce, vectors */
    nop
    b       enter_virtual           /* r3 = &MmuHandoff */

/*
 * enter_virtual(r3 = &MmuHandoff): bolt the kernel's linear mapping into the hypervisor's
 * HPT, load the bolted SLB entries and rfid into the kernel at its link address with
 * IR|DR|ME|RI. Used by the boot CPU and by every secondary CPU (those skip the H_ENTER loop:
 * hand-off field npages = 0).
 */
    .globl enter_virtual
enter_virtual:
    mr      31, 3
    ld      20, {H_VSID}(31)
    ld      21, {H_HMASK}(31)
    ld      22, {H_NPAGES}(31)
    ld      24, {H_PTE1}(31)
    li      23, 0
3:  cmpld   23, 22
    bge     6f
    xor     25, 20, 23              /* hash = vsid ^ page index (256M segment, 4K page) */
    and     26, 25, 21
    sldi    26, 26, 3               /* ptex of slot 0 of the primary group */
    sldi    27, 20, 12              /* v = vsid << 12 | AVPN low bits | BOLTED | V */
    srdi    28, 23, 11
    sldi    28, 28, 7
    or      27, 27, 28
    ori     27, 27, {H_BOLTED_V}
    sldi    28, 23, 12              /* r = PA | WIMG=M | PP=00 (kernel RW, user none) */
    or      28, 28, 24
    H_ENTER_R26_R27_R28
    beq     5f
    cmpdi   3, {H_PTEG_FULL}            /* group full: try the secondary group */
    bne     4f
    not     26, 25
    and     26, 26, 21
    sldi    26, 26, 3
    ori     27, 27, {H_SECONDARY}   /* HPTE H bit: secondary hash */
    H_ENTER_R26_R27_R28
    beq     5f
4:  mr      4, 3                    /* hcall status */
    mr      3, 23                   /* page that failed */
    bl      boot_hpt_failed         /* prints and exits; never returns */
    nop
5:  addi    23, 23, 1
    b       3b

6:  /* SLB: slbia leaves entry 0 alone, so every bolted slot is written explicitly. */
    slbia
    ld      22, {H_NSLB}(31)
    addi    23, 31, {H_SLB}
7:  cmpdi   22, 0
    beq     8f
    ld      4, 0(23)                /* RS: VSID word */
    ld      5, 8(23)                /* RB: ESID | V | index */
    slbmte  4, 5
    addi    23, 23, 16
    addi    22, 22, -1
    b       7b
8:  isync
    ld      1, {H_STACK}(31)
    ld      13, {H_PACA}(31)
    mtsprg  0, 13
    ld      2, {H_TOC}(31)
    ld      3, {H_ARG}(31)
    ld      4, {H_ENTRY}(31)
    ld      5, {H_MSR}(31)
    mr      12, 4                   /* ELFv2 global entry derives r2 from r12 */
    li      0, 0
    std     0, 0(1)                 /* a NULL back chain and LR end every backtrace here */
    mtlr    0
    mtsrr0  4
    mtsrr1  5
    rfid

/*
 * opal_start: skiboot's entry (real mode, MSR = SF|HV, running in place at the load address).
 * Position independent until the jump to opal_relocated. The ELF header lies at the start of
 * the file, a few pages below _start (at _start's file offset); it is found by its magic and
 * entry point, then every PT_LOAD segment is copied to its LMA + 0x400000.
 */
opal_start:
    mr      31, 3                   /* FDT */
    mr      30, 8                   /* OPAL base */
    mr      29, 9                   /* OPAL entry */
    bl      1f
1:  mflr    27
    addi    27, 27, _start - 1b     /* PA of _start */
    LOAD64  25, _start              /* e_entry */
    clrrdi  26, 27, 12
    li      24, 64                  /* search at most 256 KiB back */
    lis     23, 0x7f45
    ori     23, 23, 0x4c46          /* "\x7fELF" */
2:  lwz     11, 0(26)
    cmpw    11, 23
    bne     3f
    ld      11, 24(26)
    cmpd    11, 25
    beq     4f
3:  addi    26, 26, -4096
    addi    24, 24, -1
    cmpdi   24, 0
    bne     2b
    b       .                       /* no ELF header: nothing sane to do, no console yet */
4:  ld      20, 32(26)              /* e_phoff */
    add     20, 20, 26
    lhz     21, 54(26)              /* e_phentsize */
    lhz     22, 56(26)              /* e_phnum */
5:  cmpdi   22, 0
    beq     8f
    lwz     11, 0(20)               /* p_type */
    cmpwi   11, 1                   /* PT_LOAD */
    bne     7f
    ld      4, 8(20)                /* p_offset */
    add     4, 4, 26
    ld      3, 24(20)               /* p_paddr */
    addis   3, 3, 0x40              /* + 0x400000 */
    ld      5, 32(20)               /* p_filesz, copied in doublewords */
    addi    5, 5, 7
    srdi.   5, 5, 3
    beq     7f
    mtctr   5
6:  ld      0, 0(4)
    std     0, 0(3)
    addi    4, 4, 8
    addi    3, 3, 8
    bdnz    6b
7:  add     20, 20, 21
    addi    22, 22, -1
    b       5b
8:  /* The copied text must reach instruction fetch: flush, invalidate, discard prefetch. */
    LOAD64  3, __kernel_start
    LOAD64  4, __etext
    mr      5, 3
9:  dcbst   0, 5
    addi    5, 5, 128
    cmpld   5, 4
    blt     9b
    sync
10: icbi    0, 3
    addi    3, 3, 128
    cmpld   3, 4
    blt     10b
    sync
    isync
    LOAD64  12, opal_relocated
    mtctr   12
    bctr

opal_relocated:                     /* now at PA 0x4xxxxx (the link address in real mode) */
    EARLY_SETUP
    mr      3, 31
    mr      4, 30
    mr      5, 29
    bl      early_main_opal         /* Rust, real mode: FDT, HPT, LPCR, vectors, bolting */
    nop
    b       enter_virtual

/*
 * opal_secondary_entry: OPAL_START_CPU lands here in real mode, MSR = SF|HV, r3 = PIR. The
 * hand-off is the one OPAL_CPU_HANDOFF lists for this PIR (powernv.rs); its CPU's MMU
 * registers are set in Rust on its own stack, then the common path turns translation on.
 */
    .globl opal_secondary_entry
opal_secondary_entry:
    LOAD64  4, OPAL_CPU_HANDOFF
    li      5, {MAX_CPUS}
1:  ld      6, 0(4)
    cmpd    6, 3
    beq     2f
    addi    4, 4, 16
    addi    5, 5, -1
    cmpdi   5, 0
    bne     1b
    b       .                       /* a PIR the kernel did not start: stay here */
2:  ld      31, 8(4)                /* hand-off */
    ld      13, {H_PACA}(31)
    mtsprg  0, 13
    ld      2, {H_TOC}(31)
    ld      1, {H_STACK}(31)
    li      0, 0
    std     0, 0(1)
    bl      powernv_secondary_mmu
    nop
    mr      3, 31
    b       enter_virtual

/*
 * of_call(r3 = args PA, r4 = entry): call the Open Firmware client interface. VOF is 32-bit
 * code: it saves non-volatile registers with 32-bit stores and clobbers r2, so this keeps
 * all of them itself.
 */
    .globl of_call
of_call:
    mflr    0
    std     0, 16(1)
    mfcr    0
    std     0, 8(1)
    stdu    1, -256(1)
    std     2, 24(1)
    std     13, 32(1)
    std     14, 40(1)
    std     15, 48(1)
    std     16, 56(1)
    std     17, 64(1)
    std     18, 72(1)
    std     19, 80(1)
    std     20, 88(1)
    std     21, 96(1)
    std     22, 104(1)
    std     23, 112(1)
    std     24, 120(1)
    std     25, 128(1)
    std     26, 136(1)
    std     27, 144(1)
    std     28, 152(1)
    std     29, 160(1)
    std     30, 168(1)
    std     31, 176(1)
    mtctr   4
    bctrl
    ld      2, 24(1)
    ld      13, 32(1)
    ld      14, 40(1)
    ld      15, 48(1)
    ld      16, 56(1)
    ld      17, 64(1)
    ld      18, 72(1)
    ld      19, 80(1)
    ld      20, 88(1)
    ld      21, 96(1)
    ld      22, 104(1)
    ld      23, 112(1)
    ld      24, 120(1)
    ld      25, 128(1)
    ld      26, 136(1)
    ld      27, 144(1)
    ld      28, 152(1)
    ld      29, 160(1)
    ld      30, 168(1)
    ld      31, 176(1)
    addi    1, 1, 256
    ld      0, 8(1)
    mtcr    0
    ld      0, 16(1)
    mtlr    0
    blr

/*
 * secondary_entry: RTAS start-cpu lands here in real mode with MSR = SF|ME, r1 = 0 and
 * r3 = the MmuHandoff prepared for this CPU (its physical address).
 */
    .globl secondary_entry
secondary_entry:
    ld      13, {H_PACA}(3)
    mtsprg  0, 13
    ld      2, {H_TOC}(3)
    b       enter_virtual

    /* CPU 0's kernel stack, with an unmapped guard page below it (mm removes its bolted HPTE,
     * like every other stack's): an overflow faults instead of running into the .bss below. */
    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .globl boot_stack_guard
boot_stack_guard:
    .space  4096
boot_stack:
    .space  {BOOT_STACK_SIZE}
    .globl boot_stack_top
boot_stack_top:
