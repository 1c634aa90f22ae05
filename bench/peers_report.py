#!/usr/bin/env python3
"""Helpers of bench/peers.sh, which owns the lab and the measurements.

This file only reads what the script wrote:

  peers_report.py iperf FILE.json   one iperf3 client result -> "ok\t<Gbit/s>\t<retransmits>"
                                    or "failed\t<reason>" (never raises on a bad file)
  peers_report.py table RESULTS.tsv the comparison table (Markdown), then the notes
                                    of the run, the ratios to OVS with AF_XDP ports and
                                    the issue's targets, met or not
  peers_report.py backends          reads `portcullis show ports --json` on stdin and
                                    prints each port's backend in use, space-separated
  peers_report.py portcullis-io IN OUT
                                    reads `portcullis show ports --json` on stdin and
                                    prints "<IN's rx_frames>\t<OUT's frames not sent:
                                    tx_ring_full + tx_too_big + tx_errors>" (nothing
                                    if either port is absent)

RESULTS.tsv holds one record per line, tab-separated (written by peers.sh):

  tcp_on|tcp_off  SWITCH RUN ok GBPS RETRANSMITS [NOT_SENT]  |  ... RUN failed REASON
  udp   SWITCH RUN ok DELIVERED_PPS OFFERED_PPS SWITCH_CPU_PCT GEN_CPU_PCT SOFTIRQ_PCT SECS
        TAKEN_IN_PPS VETH_DROP_PPS TX_LOST_PPS [PMD_BUSY_PCT]
                                 (per second: frames the userspace switch took in, by
                                  its own counter, empty for the kernel's; frames the
                                  veth to g2 dropped, its tx_dropped; frames the
                                  switch forwarded but could not send, empty if unknown;
                                  then, for a switch whose PMD thread busy-polls its
                                  core (OVS with AF_XDP ports), the % of the PMD's
                                  cycles spent processing packets, empty otherwise)
  udp   SWITCH RUN failed REASON
  na    SWITCH REASON                   (a row that cannot be measured, e.g. AF_XDP)
  kind  SWITCH kernel|userspace         (how to read the switch's CPU)
  note  SWITCH TEXT                     (how the switch was set up, printed under the table)

Invariant: every figure in the table is a median over the runs of one switch, and
every ratio divides two figures of the same results file (the same run of peers.sh).
"""

import json
import statistics
import sys

BASELINE = "linux-bridge"
OVS = "ovs-netdev"
OVS_AFXDP = "ovs-afxdp"
PORTCULLIS = "portcullis"
PORTCULLIS_AFXDP = "portcullis-afxdp"

# A switch at or above this share of one core is saturated.
SATURATED_PCT = 90.0
# Delivered/offered at or above this is "all delivered"; below LOSSY, "much less".
DELIVERED_ALL = 0.95
DELIVERED_LOSSY = 0.80


def iperf(path):
    """One iperf3 -J client result, as a line peers.sh records."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return "failed\tno iperf3 result (killed by the timeout, or crashed)"
    if not isinstance(data, dict):
        return "failed\tunreadable iperf3 result"
    if data.get("error"):
        return "failed\t" + " ".join(str(data["error"]).split())
    try:
        bps = float(data["end"]["sum_received"]["bits_per_second"])
    except (KeyError, TypeError, ValueError):
        return "failed\tiperf3 gave no end-of-test summary"
    retransmits = data["end"].get("sum_sent", {}).get("retransmits", "")
    return f"ok\t{bps / 1e9:.3f}\t{retransmits}"


def optional(fields, i):
    return float(fields[i]) if len(fields) > i and fields[i] else None


class Switch:
    def __init__(self, name):
        self.name = name
        self.kind = "userspace"
        self.na = None
        self.tcp = {"tcp_on": [], "tcp_off": []}
        self.tcp_failed = {"tcp_on": [], "tcp_off": []}
        self.udp = []  # dicts
        self.udp_failed = []
        self.notes = []
        self.rtt = None  # (min, avg, max) ms of ping through the idle switch

    def tcp_median(self, which):
        ok = self.tcp[which]
        return statistics.median(ok) if ok else None

    def udp_median(self):
        """The run with the median delivered rate (a real run, so its columns agree)."""
        if not self.udp:
            return None
        ordered = sorted(self.udp, key=lambda r: r["delivered"])
        return ordered[(len(ordered) - 1) // 2]


def read_results(path):
    switches = {}
    order = []

    def get(name):
        if name not in switches:
            switches[name] = Switch(name)
            order.append(name)
        return switches[name]

    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                continue
            kind, sw = fields[0], get(fields[1])
            if kind == "kind":
                sw.kind = fields[2]
            elif kind == "na":
                sw.na = fields[2]
            elif kind == "note":
                sw.notes.append(fields[2])
            elif kind == "rtt" and len(fields) >= 7 and fields[3] == "ok":
                sw.rtt = (float(fields[4]), float(fields[5]), float(fields[6]))
            elif kind in ("tcp_on", "tcp_off") and len(fields) >= 5:
                if fields[3] == "ok":
                    sw.tcp[kind].append(float(fields[4]))
                else:
                    sw.tcp_failed[kind].append(fields[4])
            elif kind == "udp" and len(fields) >= 5:
                if fields[3] == "ok" and len(fields) >= 10:
                    sw.udp.append(
                        {
                            "delivered": float(fields[4]),
                            "offered": float(fields[5]),
                            "switch_cpu": float(fields[6]) if fields[6] else None,
                            "gen_cpu": float(fields[7]),
                            "softirq": float(fields[8]),
                            "taken_in": optional(fields, 10),
                            "tx_lost": optional(fields, 12),
                            "pmd_busy": optional(fields, 13),
                        }
                    )
                else:
                    sw.udp_failed.append(fields[4])
    return [switches[n] for n in order]


def tcp_cell(sw, which):
    value = sw.tcp_median(which)
    failed = sw.tcp_failed[which]
    if value is None:
        return "failed: " + (failed[0] if failed else "not run")
    cell = f"{value:.2f}"
    if failed:
        cell += f" ({len(failed)} of {len(failed) + len(sw.tcp[which])} runs failed)"
    return cell


def switch_cpu(sw, run):
    """The switch's CPU in % of one core: its process, or softirq for the kernel's."""
    if sw.kind == "kernel":
        return run["softirq"]
    return run["switch_cpu"]


def switch_load(sw, run):
    """How busy the switch is, in % of one core, and how to say it: for a
    busy-polling PMD the share of its cycles spent processing (its CPU time is a
    whole core whatever the load), otherwise its CPU."""
    pmd = run.get("pmd_busy")
    if pmd is not None:
        return pmd, f"PMD processing {pmd:.0f} % of its cycles"
    cpu = switch_cpu(sw, run)
    return cpu, (f"{cpu:.0f} % of a core" if cpu is not None else "")


def bottleneck(sw, run):
    delivered, offered = run["delivered"], run["offered"]
    share = delivered / offered if offered > 0 else 0.0
    load, load_text = switch_load(sw, run)
    saturated = load is not None and load >= SATURATED_PCT
    if share >= DELIVERED_ALL:
        if saturated:
            return f"both: switch at {load_text}, keeping up with the generator"
        return "generator"
    if saturated or share < DELIVERED_LOSSY:
        taken_in, tx_lost = run.get("taken_in"), run.get("tx_lost")
        notes = []
        if saturated:
            notes.append(load_text)
        if taken_in is not None and offered > 0:
            notes.append(f"takes in {min(taken_in / offered, 1.0):.0%} of offered")
        if tx_lost and taken_in:
            notes.append(f"cannot send {tx_lost / taken_in:.0%} of those")
        return "switch" + (f" ({', '.join(notes)})" if notes else "")
    return f"unclear ({share:.0%} delivered, switch {load_text or 'CPU unknown'})"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def table(path):
    switches = read_results(path)
    base = next((s for s in switches if s.name == BASELINE), None)
    head = [
        "switch",
        "TCP Gbit/s (offload on)",
        "TCP Gbit/s (tx off)",
        "UDP Mpps delivered",
        "Mpps offered",
        "switch CPU % (softirq %)",
        "generator CPU %",
        "bottleneck",
        "ping RTT ms, idle (avg / max)",
        "vs Linux bridge: TCP on / TCP tx off / UDP",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for sw in switches:
        if sw.na is not None:
            out.append(f"| {sw.name} | " + " | ".join([sw.na] * (len(head) - 1)) + " |")
            continue
        run = sw.udp_median()
        if run is None:
            reason = sw.udp_failed[0] if sw.udp_failed else "not run"
            udp_cells = ["failed: " + reason, "—", "—", "—", "—"]
            udp = None
        else:
            cpu = switch_cpu(sw, run)
            if sw.kind == "kernel":
                cpu_cell = f"softirq {cpu:.0f}"
            else:
                cpu_cell = f"{cpu:.0f} ({run['softirq']:.0f})"
                if run.get("pmd_busy") is not None:
                    cpu_cell += f"; PMD processing {run['pmd_busy']:.0f}"
            udp_cells = [
                f"{run['delivered'] / 1e6:.3f}",
                f"{run['offered'] / 1e6:.3f}",
                cpu_cell,
                f"{run['gen_cpu']:.0f}",
                bottleneck(sw, run),
            ]
            if sw.udp_failed:
                udp_cells[0] += f" ({len(sw.udp_failed)} runs failed)"
            udp = run["delivered"]
        if base is not None and sw is not base:
            b_run = base.udp_median()
            ratios = " / ".join(
                [
                    ratio(sw.tcp_median("tcp_on"), base.tcp_median("tcp_on")),
                    ratio(sw.tcp_median("tcp_off"), base.tcp_median("tcp_off")),
                    ratio(udp, b_run["delivered"] if b_run else None),
                ]
            )
        else:
            ratios = "1" if sw is base else "—"
        rtt = f"{sw.rtt[1]:.3f} / {sw.rtt[2]:.3f}" if sw.rtt else "—"
        cells = (
            [sw.name, tcp_cell(sw, "tcp_on"), tcp_cell(sw, "tcp_off")]
            + udp_cells
            + [rtt, ratios]
        )
        out.append("| " + " | ".join(cells) + " |")
    print("\n".join(out))
    print()
    print(
        "switch CPU: the switch process (utime+stime over the UDP window, % of one core),"
        " in brackets the whole machine's softirq; for the kernel's switches softirq only;"
        " for a switch whose PMD thread busy-polls its core (OVS with AF_XDP ports), also"
        " the % of the PMD's cycles spent processing packets (dpif-netdev/pmd-stats-show),"
        " which the bottleneck column uses instead of its CPU."
    )
    notes = [f"- {sw.name}: {note}" for sw in switches for note in sw.notes]
    if notes:
        print()
        print("notes of the run:")
        print("\n".join(notes))
    print(targets(switches))


def targets(switches):
    by = {s.name: s for s in switches}
    base, ovs, ovs_afxdp = by.get(BASELINE), by.get(OVS), by.get(OVS_AFXDP)
    ours = [by[n] for n in (PORTCULLIS, PORTCULLIS_AFXDP) if n in by and by[n].na is None]
    if base is None or not ours:
        return "targets: not evaluated (needs the linux-bridge row and a portcullis row)"

    def udp(sw):
        run = sw.udp_median() if sw else None
        return run["delivered"] if run else None

    lines = []
    for pc in ours:
        lines += ["", f"targets of the issue, {pc.name} (same run):"]
        if ovs_afxdp is not None:
            lines.append(
                "- against OVS with AF_XDP ports, TCP on / TCP tx off / UDP: "
                + " / ".join(
                    [
                        ratio(pc.tcp_median("tcp_on"), ovs_afxdp.tcp_median("tcp_on")),
                        ratio(pc.tcp_median("tcp_off"), ovs_afxdp.tcp_median("tcp_off")),
                        ratio(udp(pc), udp(ovs_afxdp)),
                    ]
                )
            )

        def check(label, a, b, goal, against=base):
            if against is None:
                lines.append(f"- {label}: not measured (no such row in this run)")
                return
            if a is None or b is None or b == 0:
                lines.append(f"- {label}: not measurable (a run failed) — not met")
                return
            r = a / b
            lines.append(f"- {label}: {r:.2f}× — {'met' if r >= goal else 'not met'}")

        check("64-byte UDP ≥ 1.0× Linux bridge", udp(pc), udp(base), 1.0)
        check("64-byte UDP ≥ 2× OVS netdev", udp(pc), udp(ovs), 2.0, ovs)
        check(
            "64-byte UDP ≥ 1.0× OVS with AF_XDP ports",
            udp(pc),
            udp(ovs_afxdp),
            1.0,
            ovs_afxdp,
        )
        check(
            "TCP with offloads ≥ 0.8× Linux bridge",
            pc.tcp_median("tcp_on"),
            base.tcp_median("tcp_on"),
            0.8,
        )
        check(
            "TCP tx-off ≥ 1.0× Linux bridge",
            pc.tcp_median("tcp_off"),
            base.tcp_median("tcp_off"),
            1.0,
        )
    return "\n".join(lines)


def portcullis_io(port_in, port_out):
    """Frames taken in on one port and frames not sent on another, from the
    daemon's ports JSON on stdin."""
    try:
        ports = {p["name"]: p for p in json.load(sys.stdin)}
        taken_in = int(ports[port_in]["counters"]["rx_frames"])
        io = ports[port_out]["io"]
        lost = int(io["tx_ring_full"]) + int(io["tx_too_big"]) + int(io["tx_errors"])
    except (ValueError, KeyError, TypeError):
        return
    print(f"{taken_in}\t{lost}")


def backends():
    """The backend each port uses, from the daemon's ports JSON on stdin."""
    try:
        print(" ".join(str(p.get("backend", "?")) for p in json.load(sys.stdin)))
    except (ValueError, TypeError, AttributeError):
        print("?")


def main(argv):
    if len(argv) == 2 and argv[1] == "backends":
        backends()
        return 0
    if len(argv) == 4 and argv[1] == "portcullis-io":
        portcullis_io(argv[2], argv[3])
        return 0
    if len(argv) == 3 and argv[1] == "iperf":
        print(iperf(argv[2]))
        return 0
    if len(argv) == 3 and argv[1] == "table":
        table(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
