#!/usr/bin/env bash
# Linux 6.1's hash-fault path lengths, counted with tools/insncount on the same QEMU, next to
# this kernel's.
#
#   scripts/compare-linux.sh [--ours FILE[@TAG]] [--package NAME] [--refresh] [--timeout SECONDS]
#
# 1. Fetches Debian bookworm's ppc64el kernel package (default: what the metapackage
#    linux-image-powerpc64le depends on, i.e. linux-image-6.1.0-*-powerpc64le) with apt-get,
#    run with a private configuration, state and cache under target/linux-cmp/apt (APT_CONFIG):
#    the machine's apt/dpkg configuration, lists and architectures are not touched, nothing is
#    installed. Only boot/vmlinux-* is unpacked (dpkg-deb --fsys-tarfile). Cached: later runs do
#    not use the network (--refresh fetches again).
# 2. Boots it as in shared/notes/linux-6.1-path-length.md (pseries, POWER9, 1 GiB, 1 vCPU,
#    SLOF, `disable_radix console=hvc0`, plus `panic=-1` so that the "cannot mount root"
#    panic reboots and -no-reboot ends QEMU) with the plugin in mode=all, little endian,
#    vector base 0xc000000000004000 only: Linux enables AIL=3, so its kernel interrupts arrive
#    there; the real-mode base 0 would also catch SLOF's big-endian vectors, which a
#    little-endian decoder cannot follow.
# 3. Prints the 0x300 windows with exactly one `sc` (an insert by one H_ENTER), with two, and
#    the 0x380 windows (count, min, mode, max): for the whole boot, where nearly every 0x300 is
#    __patch_instruction writing through the text-poke page while ftrace and friends patch the
#    kernel, and from kernel_init on (mark= M line), the "after boot set-up" faults of the
#    single-step note. Then the same as gdb single-step stops (instructions minus the priority
#    nops `or N,N,N` in the window: QEMU 7.2 ends a block after one with EXCP_HLT, and a gdb
#    step then runs it and the next instruction together; the note's 921-934/273-285 are stops).
#    Last, the same figures from --ours, an insncount output file of this kernel (e.g.
#    `scripts/run.sh K --count-insns F,all bench=hash`), all tags or only TAG.
# Results: target/linux-cmp/linux-6.1.counts (plugin output, detail=on), linux-6.1.console.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$ROOT/target/linux-cmp
OURS="" PKG="" REFRESH=0 LIMIT=900
die() { echo "compare-linux: $*" >&2; exit 1; }
while (($#)); do
    case "$1" in
        --ours) OURS=${2:?}; shift ;;
        --package) PKG=${2:?}; shift ;;
        --refresh) REFRESH=1 ;;
        --timeout) LIMIT=${2:?}; shift ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--ours FILE[@TAG] --package NAME --refresh --timeout SECONDS)" ;;
    esac
    shift
done
[[ $LIMIT =~ ^[0-9]+$ && $LIMIT -gt 0 ]] || die "--timeout must be a positive number of seconds"
OURS_TAG=""
if [[ -n $OURS && $OURS == *@* ]]; then OURS_TAG=${OURS##*@}; OURS=${OURS%@*}; fi
[[ -z $OURS || -f $OURS ]] || die "--ours: no such file '$OURS'"
command -v qemu-system-ppc64 >/dev/null || die "qemu-system-ppc64 not found: run scripts/setup.sh"
mkdir -p "$CACHE"

# ------------------------------------------------------------------ 1. the kernel package
VMLINUX=$(ls "$CACHE"/extract/boot/vmlinux-* 2>/dev/null | head -1)
if [[ -z $VMLINUX || $REFRESH == 1 ]]; then
    A=$CACHE/apt
    rm -rf "$A" "$CACHE/extract"
    mkdir -p "$A"/etc/sources.list.d "$A"/etc/apt.conf.d "$A"/etc/preferences.d "$A"/etc/trusted.gpg.d \
             "$A"/lists/partial "$A"/cache/archives/partial "$A"/state
    : >"$A/status"
    cat >"$A/etc/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Architectures: ppc64el
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Architectures: ppc64el
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Read before anything else (APT_CONFIG), so the machine's /etc/apt is not consulted and
    # every file apt writes stays under $A.
    cat >"$A/apt.conf" <<EOF
Dir::Etc "$A/etc";
Dir::Etc::main "apt.conf";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::State "$A/state";
Dir::State::lists "$A/lists";
Dir::State::status "$A/status";
Dir::Cache "$A/cache";
Dir::Cache::archives "$A/cache/archives";
Dir::Log "$A/log";
APT::Architecture "ppc64el";
APT::Architectures { "ppc64el"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
EOF
    export APT_CONFIG=$A/apt.conf
    echo "compare-linux: apt-get update (private state in $A)"
    if ! timeout 600 apt-get -q update >"$A/update.log" 2>&1; then
        # One suite's index may be mid-sync on the mirror; go on if the package still resolves.
        grep -E '^(E|W):' "$A/update.log" | sed 's/^/compare-linux: apt: /' >&2
        echo "compare-linux: apt-get update reported errors (above); continuing with the indexes it got" >&2
    fi
    if [[ -z $PKG ]]; then
        PKG=$(apt-cache depends linux-image-powerpc64le 2>/dev/null | awk '/Depends: linux-image-6\.1\.0-[0-9]+-powerpc64le/ {print $2; exit}')
        [[ -n $PKG ]] || die "cannot tell which linux-image-6.1.0-*-powerpc64le linux-image-powerpc64le depends on"
    fi
    echo "compare-linux: apt-get download $PKG"
    (cd "$A/cache/archives" && timeout 900 apt-get -q download "$PKG") >"$A/download.log" 2>&1 \
        || { cat "$A/download.log" >&2; die "apt-get download $PKG failed"; }
    DEB=$(ls "$A"/cache/archives/"${PKG}"_*.deb | head -1)
    [[ -f $DEB ]] || die "no .deb for $PKG after the download"
    mkdir -p "$CACHE/extract"
    dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$CACHE/extract" --wildcards './boot/vmlinux-*' \
        || die "no boot/vmlinux-* in $DEB"
    dpkg-deb -f "$DEB" Package Version >"$CACHE/extract/PACKAGE"
    rm -f "$DEB"
    unset APT_CONFIG
    VMLINUX=$(ls "$CACHE"/extract/boot/vmlinux-* | head -1)
fi
PKGINFO=$(tr '\n' ' ' <"$CACHE/extract/PACKAGE" 2>/dev/null)
echo "compare-linux: $VMLINUX (${PKGINFO:-package unknown})"

# ------------------------------------------------------------------ 2. boot and count
SO=$("$ROOT/scripts/insncount.sh" build) || die "building the plugin failed"
OUT=$CACHE/linux-6.1.counts
CON=$CACHE/linux-6.1.console
# kernel_init's local entry (ELFv2: a direct call skips the 8-byte TOC setup): the M line marks
# where the init task starts, i.e. the end of start_kernel's set-up (ftrace and the text
# patching that causes nearly all boot-time 0x300 faults).
KI=$(readelf -sW "$VMLINUX" | awk '$NF == "kernel_init" && $4 == "FUNC" {le = 0; if (match($0, /localentry>: [0-9]+/)) le = substr($0, RSTART + 12, RLENGTH - 12); print $2, le; exit}')
[[ -n $KI ]] || die "no kernel_init symbol in $VMLINUX"
MARK=$(printf '0x%x' $((0x${KI% *} + ${KI#* })))
rm -f "$OUT"
echo "compare-linux: booting Linux with the plugin (until its 'no root fs' panic; limit ${LIMIT}s)"
start=$(date +%s.%N)
timeout -s TERM -k 10 "$LIMIT" qemu-system-ppc64 -M pseries -cpu POWER9 -m 1G -smp 1 \
    -nographic -nodefaults -vga none -chardev stdio,id=c0 -device spapr-vty,chardev=c0 \
    -kernel "$VMLINUX" -append 'disable_radix console=hvc0 panic=-1' -no-reboot \
    -plugin "$SO,out=$OUT,mode=all,endian=little,vbase=0xc000000000004000,detail=on,mark=$MARK" \
    </dev/null >"$CON" 2>&1
rc=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
grep -aq 'Unable to mount root fs' "$CON" || echo "compare-linux: warning: Linux did not reach its root-fs panic (QEMU status $rc, ${secs}s); see $CON" >&2
[[ -f $OUT ]] || die "the plugin wrote no $OUT (QEMU status $rc); see $CON"
echo "compare-linux: QEMU ended (status $rc) after ${secs}s; counts in $OUT"
MSEQ=$(awk '$1 == "M" {print $3}' "$OUT")
[[ -n $MSEQ ]] || { echo "compare-linux: warning: kernel_init ($MARK) never ran" >&2; MSEQ=999999999999; }

# ------------------------------------------------------------------ 3. figures
# row LABEL: windows, min, mode, max (and the values when few) of the numbers on stdin.
row() {
    sort -n | uniq -c | awk -v label="$1" '
        { c[NR] = $1; v[NR] = $2; n += $1; if ($1 > best) { best = $1; mode = $2 } }
        END {
            if (n == 0) { printf "    %-44s %8s\n", label, "none"; exit }
            printf "    %-44s %8d %6d %6d %6d", label, n, v[1], mode, v[NR]
            if (NR <= 10) { printf "   ("; for (i = 1; i <= NR; i++) printf "%s%d x%d", (i > 1 ? ", " : ""), v[i], c[i]; printf ")" }
            else {
                # The six most frequent values, most frequent first.
                printf "   (most frequent:"
                for (k = 0; k < 6; k++) {
                    b = 0; for (i = 1; i <= NR; i++) if (!(i in done) && c[i] > (b ? c[b] : 0)) b = i
                    done[b] = 1; printf "%s %d x%d", (k ? "," : ""), v[b], c[b]
                }
                printf ")"
            }
            printf "\n"
        }'
}
# W lines: $2 seq, $5 vector, $6 insns, $7 sc, $11 priority nops (hints).
w() { awk -v vec="$1" -v sc="$2" -v from="$3" -v adj="$4" \
        '$1 == "W" && $5 == vec && (sc == "" || $7 == sc) && $2 >= from { print $6 - (adj ? $11 : 0) }' "$OUT"; }
# J lines (ours): tag vector sc insns count.
j() { awk -v vec="$2" -v sc="$3" -v tag="$4" \
        '$1 == "J" && $3 == vec && (sc == "" || $4 == sc) && (tag == "" || $2 == tag) { for (i = 0; i < $6; i++) print $5 }' "$1"; }

printf '\n    %-44s %8s %6s %6s %6s\n' "instructions, vector to rfid (insncount)" "windows" "min" "mode" "max"
echo "  Linux 6.1, the whole boot (0x300: nearly all __patch_instruction's text-poke page):"
w 0x300 1 0 0 | row "0x300, one sc (H_ENTER insert)"
w 0x300 2 0 0 | row "0x300, two sc"
w 0x380 "" 0 0 | row "0x380 (segment miss)"
echo "  Linux 6.1, from kernel_init on (after boot set-up):"
w 0x300 1 "$MSEQ" 0 | row "0x300, one sc (H_ENTER insert)"
w 0x300 2 "$MSEQ" 0 | row "0x300, two sc"
w 0x380 "" "$MSEQ" 0 | row "0x380 (segment miss)"
echo "  the same as gdb single-step stops (insns minus priority nops, which QEMU 7.2 runs"
echo "  together with the next instruction in one step; the method of the single-step note):"
w 0x300 1 "$MSEQ" 1 | row "0x300, one sc, from kernel_init on"
w 0x300 2 0 1 | row "0x300, two sc, whole boot"
w 0x380 "" 0 1 | row "0x380, whole boot"
if [[ -n $OURS ]]; then
    echo "  ours ($OURS${OURS_TAG:+, tag $OURS_TAG}):"
    j "$OURS" 0x300 1 "$OURS_TAG" | row "0x300, one sc"
    j "$OURS" 0x300 2 "$OURS_TAG" | row "0x300, two sc"
    j "$OURS" 0x380 "" "$OURS_TAG" | row "0x380 (segment miss)"
fi
