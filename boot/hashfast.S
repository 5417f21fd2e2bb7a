/*
 * hash_page=asm: a hand-written real-mode fast path for the common 0x300 case — a kernel
 * load/store to a vmalloc/ioremap page whose PTE is present, not BUSY, has no HPTE yet, and
 * whose primary HPTE group has a free slot. It is the same protocol as the Rust path
 * (src/hash/protocol.rs) — one ldarx/stdcx. step that checks the access and takes BUSY, then
 * H_ENTER, then a release store of the PTE with the slot — without building an exception
 * frame or turning translation on. Anything else (BUSY, an existing HPTE, a denial, a full
 * group, problem state, any other DSISR bit) goes to exc_common unchanged, where the Rust path
 * handles it. The 0x300 vector comes here only when the per-CPU vector target says so
 * (hash_page=asm; src/hash/fault.rs sets it), so the other modes pay nothing. State lives in the per-CPU area: the vector saved r9-r12 and CTR,
 * this code saves r0, r3-r8 and CR (and XER, SRR0, SRR1 and its live values across H_ENTER).
 *
 * Real mode: the page-table pointers and the per-CPU area are linear addresses (0xc...), which
 * real mode maps to the same physical memory (it ignores the top four EA bits). The walk needs
 * no acquire barriers here: each load's address depends on the previous load, which orders
 * them on POWER (the tables are zeroed before a release store publishes them).
 */
/* r0, r3-r8 and CR in the per-CPU save area (r9-r12 and CTR are in the vector's scratch). */
.macro HF_SAVE
    std     0, {FS}+0(13)
    std     3, {FS}+8(13)
    std     4, {FS}+16(13)
    std     5, {FS}+24(13)
    std     6, {FS}+32(13)
    std     7, {FS}+40(13)
    std     8, {FS}+48(13)
    mfcr    9
    std     9, {FS}+56(13)
.endm

.macro HF_RESTORE
    ld      0, {FS}+0(13)
    ld      3, {FS}+8(13)
    ld      4, {FS}+16(13)
    ld      5, {FS}+24(13)
    ld      6, {FS}+32(13)
    ld      7, {FS}+40(13)
    ld      8, {FS}+48(13)
    ld      9, {FS}+56(13)
    mtcr    9
.endm

    .section .text.hash_fast, "ax"
    .globl hash_fast
hash_fast:
    HF_SAVE
    mfsrr1  10
    andi.   10, 10, {MSR_PR}        /* problem state goes the full way */
    bne-    hf_slow
    mfdsisr 4
    andis.  10, 4, {DSISR_NOPTE_HI} /* DSISR NOPTE must be set ... */
    beq-    hf_slow
    lis     11, {DSISR_PLAIN_HI}
    andc.   10, 4, 11               /* ... and nothing but NOPTE and ISSTORE */
    bne-    hf_slow
    mfdar   3
    srdi    11, 3, 60               /* region: 0xd vmalloc, 0xe I/O */
    addi    11, 11, -0xd
    cmpldi  11, 1
    bgt-    hf_slow
    ld      12, {PACA_ROOTS}(13)
    sldi    11, 11, 3
    ldx     12, 12, 11              /* PGD */
    cmpdi   12, 0
    beq-    hf_slow
    clrldi  11, 3, 4                /* offset in the region: must be below 2^39 */
    srdi.   10, 11, 39
    bne-    hf_slow
    rldicl  10, 11, 64-30, 55
    sldi    10, 10, 3
    ldx     12, 12, 10              /* PMD */
    cmpdi   12, 0
    beq-    hf_slow
    rldicl  10, 11, 64-21, 55
    sldi    10, 10, 3
    ldx     12, 12, 10              /* PTE page */
    cmpdi   12, 0
    beq-    hf_slow
    rldicl  10, 11, 64-12, 55
    sldi    10, 10, 3
    add     12, 12, 10              /* r12 = &PTE */
    li      5, {P_PRESENT}          /* need: PRESENT (+ RW for a store) */
    li      6, {P_TAKE}             /* set: BUSY | ACCESSED (+ DIRTY for a store) */
    andis.  0, 4, {DSISR_STORE_HI}
    beq     1f
    ori     5, 5, {P_RW}
    ori     6, 6, {P_DIRTY}
1:  li      10, 0                   /* lost reservations */
2:  ldarx   7, 0, 12
    andi.   0, 7, {P_SLOW}          /* BUSY, HASHPTE or a USER page: the full path */
    bne-    3f
    andc.   0, 5, 7                 /* a missing right: the full path reports it */
    bne-    3f
    or      8, 7, 6
    stdcx.  8, 0, 12
    bne-    4f
    isync
    b       5f
4:  addi    10, 10, 1
    b       2b
3:  stdcx.  7, 0, 12                /* drop the reservation, change nothing */
    ld      11, {PACA_STATS}(13)
    ld      0, {C_STCX}(11)
    add     0, 0, 10
    std     0, {C_STCX}(11)
    b       hf_slow
5:  /* r7 = old PTE, r8 = new PTE (BUSY held), r3 = EA, r12 = &PTE, r10 = lost reservations */
    ld      11, {PACA_STATS}(13)    /* per-CPU counters: only this CPU writes its row */
    ld      0, {C_STCX}(11)
    add     0, 0, 10
    std     0, {C_STCX}(11)
    srdi    9, 3, 28                /* VSID = ESID * multiplier mod (2^36 - 1), mm/slbe.rs */
    lis     11, {VSID_MUL_HI}
    ori     11, 11, {VSID_MUL_LO}
    mulld   9, 9, 11
    srdi    11, 9, {VSID_BITS}
    clrldi  9, 9, 64-{VSID_BITS}
    add     9, 9, 11
    srdi    11, 9, {VSID_BITS}
    clrldi  9, 9, 64-{VSID_BITS}
    add     9, 9, 11                /* (never 2^36 - 1 for a kernel ESID) */
    rldicl  11, 3, 64-12, 48        /* page index in the segment */
    xor     11, 11, 9               /* hash */
    ld      10, {PACA_HMASK}(13)
    and     10, 11, 10
    sldi    5, 10, 3                /* ptex of the primary group */
    sldi    6, 9, 12                /* v = VSID << 12 | API << 7 | V */
    rldicl  11, 3, 64-23, 59
    sldi    11, 11, 7
    or      6, 6, 11
    ori     6, 6, {H_V}
    mr      9, 7                    /* old PTE, for a refusal */
    srdi    10, 8, {PFN_SHIFT}-12      /* r = PA | WIMG (same bits as the PTE) | R | C | PP | N */
    rldicr  10, 10, 0, 51
    andi.   11, 8, {P_WIMG}
    or      10, 10, 11
    ori     10, 10, {H_RC}          /* R|C preset (see mm/hpte.rs hpte_for) */
    andi.   11, 8, {P_EXEC}
    bne     6f
    ori     10, 10, {H_N}           /* no EXEC: N */
6:  andi.   11, 8, {P_RW_DIRTY}
    cmpdi   11, {P_RW_DIRTY}
    beq     7f
    li      11, 1                   /* clean or read-only: PP0|10, supervisor read-only */
    sldi    11, 11, 63
    ori     11, 11, {H_PP_KRO_LO}
    or      10, 10, 11
7:  mr      7, 10
    /*
     * PAPR lets an hcall clobber r0, r3-r12, CR, CTR and XER; and `sc` is an interrupt, so
     * keep SRR0/SRR1 (our way back) ourselves too. CR and CTR are restored from the save
     * areas anyway.
     */
    std     8, {FS}+64(13)
    std     9, {FS}+72(13)
    std     12, {FS}+80(13)
    mfxer   10
    std     10, {FS}+88(13)
    mfsrr0  10
    std     10, {FS}+96(13)
    mfsrr1  10
    std     10, {FS}+104(13)
    li      3, {H_ENTER}            /* H_ENTER(0, ptex, v, r) */
    li      4, 0
    sc      1
    ld      8, {FS}+64(13)
    ld      9, {FS}+72(13)
    ld      12, {FS}+80(13)
    ld      10, {FS}+88(13)
    mtxer   10
    ld      10, {FS}+96(13)
    mtsrr0  10
    ld      10, {FS}+104(13)
    mtsrr1  10
    cmpdi   3, 0
    bne-    8f
    andi.   4, 4, 7                 /* slot in the group */
    sldi    4, 4, {P_GIX_SHIFT}
    li      10, 0
    ori     10, 10, {P_HPTEFLAGS}   /* BUSY | HASHPTE | GROUP_IX | SECONDARY */
    andc    8, 8, 10
    ori     8, 8, {P_HASHPTE}
    or      8, 8, 4
    lwsync                          /* the HPTE before the PTE that names it; releases BUSY */
    std     8, 0(12)
    ld      10, {PACA_STATS}(13)
    ld      11, {C_FAULTS}(10)
    addi    11, 11, 1
    std     11, {C_FAULTS}(10)
    ld      11, {C_INSERT}(10)
    addi    11, 11, 1
    std     11, {C_INSERT}(10)
    ld      11, {C_ASM}(10)
    addi    11, 11, 1
    std     11, {C_ASM}(10)
    ld      11, {PACA_DEPTH}(13)
    cmpdi   11, 0
    beq     9f
    ld      11, {C_IRQ}(10)
    addi    11, 11, 1
    std     11, {C_IRQ}(10)
9:  HF_RESTORE
    ld      9, {PACA_SCR}+32(13)
    mtctr   9
    ld      9, {PACA_SCR}+0(13)
    ld      10, {PACA_SCR}+8(13)
    ld      11, {PACA_SCR}+16(13)
    ld      12, {PACA_SCR}+24(13)
    mfsprg  13, 1
    rfid
8:  lwsync                          /* refused or the group is full: give BUSY back */
    std     9, 0(12)
hf_slow:
    HF_RESTORE
    li      12, 0x300
    b       exc_common
