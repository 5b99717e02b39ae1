"""How fast the `dermxai` command answers: wall time and peak memory of `dermxai --help`, `dermxai systems` and the help
of `train` (target: under 1 s, median of 5 runs), against building the same parser from the live registries, which
imports torch and every system (what every command did before the parser read the registries' catalogue).

Each command runs 5 times as a fresh process, alternating with the others so that machine noise hits all alike; the
median is reported. Run it on a quiet machine: the load average is saved with the figures.

    python bench/cli_startup.py
"""
import os, statistics, subprocess, sys, time
from pathlib import Path

RUNS, TARGET_S = 5, 1.0
BIN = Path(sys.executable).parent/'dermxai'
COMMANDS = {
    'dermxai --help': [str(BIN), '--help'],
    'dermxai systems': [str(BIN), 'systems'],
    'dermxai train --help': [str(BIN), 'train', '--help'],
    'dermxai train resnet14 --help': [str(BIN), 'train', 'resnet14', '--help'],
    # the reference: the same parser built from the registries themselves
    'parser from the live registries': [sys.executable, '-c', 'from dermxai.cli import build_parser, live_catalogue; '
                                                              'build_parser(live_catalogue())'],
}


def run(argv) -> tuple[float, float]:
    "Wall seconds and peak resident MiB of one fresh process."
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd='/', env={**os.environ, 'OMP_NUM_THREADS': '1'})
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(); p.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, (argv, err)
    return wall, usage.ru_maxrss / 1024


def main():
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    times = {k: [] for k in COMMANDS}; rss = {k: [] for k in COMMANDS}
    for _ in range(RUNS):
        for k, argv in COMMANDS.items():
            w, m = run(argv)
            times[k].append(w); rss[k].append(m)
    ref = statistics.median(times['parser from the live registries'])
    commands = {k: {'median_s': round(statistics.median(v), 3), 'runs_s': [round(x, 3) for x in v],
                    'peak_rss_mib': round(statistics.median(rss[k]), 1),
                    'speedup_vs_live_registries': round(ref / statistics.median(v), 1)} for k, v in times.items()}
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import save      # imports torch: only now, since a child's peak memory counts its parent's at the fork
    light = [k for k in COMMANDS if k.startswith('dermxai')]
    save('cli_startup', {'load_average_at_start_1_5_15_min': load_at_start, 'runs_per_command': RUNS, 'target_s': TARGET_S, 'commands': commands,
                         'slowest_light_median_s': max(commands[k]['median_s'] for k in light),
                         'meets_target': all(commands[k]['median_s'] < TARGET_S for k in light)})


if __name__ == '__main__':
    main()
