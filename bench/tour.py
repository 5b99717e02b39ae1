"""The time `make tour` takes: `dermxai tour` from nothing (data, every system, explanations, report), as a ratio to its
budget (quick profile: 15 minutes on a 2-core CPU). Also the time of a re-run that reuses every finished run.

    python bench/tour.py [--profile quick|smoke|full]

Run it with the machine otherwise quiet: other work on the cores lengthens every stage alike.
"""
import argparse, json, shutil, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save

BUDGET_S = {'quick': 15 * 60, 'smoke': 3 * 60, 'full': None}


def tour(out: Path, profile: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent/'dermxai'), 'tour', '--profile', profile, '--out', str(out), '--no-progress'],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--profile', default='quick', choices=list(BUDGET_S))
    a = ap.parse_args()
    out = RESULTS/'tmp'/f'tour-{a.profile}'
    shutil.rmtree(out, ignore_errors=True)
    first = tour(out, a.profile)
    again = tour(out, a.profile)
    s = json.loads((out/'summary.json').read_text())
    first_summary = {n: r for n, r in s['runs'].items()}
    budget = BUDGET_S[a.profile]
    save(f'tour_{a.profile}', {
        'profile': a.profile, 'cases': s['cases'], 'size': s['size'],
        'total_s': round(first, 1), 'budget_s': budget, 'ratio_to_budget': round(first / budget, 3) if budget else None,
        'met': first <= budget if budget else None,
        'rerun_s': round(again, 1), 'rerun_reused_all': all(r['reused'] for r in first_summary.values()),
        'per_run': {n: {'train_s': round(r.get('train_time_s', float('nan')), 1), 'wall_s': round(r.get('wall_time_s', float('nan')), 1),
                        'epochs': r.get('epochs_run'),
                        'test': {k: round(v, 3) for k, v in (r.get('test') or {}).items() if isinstance(v, float) and k != 'loss'}}
                    for n, r in first_summary.items()},
        'views_drawn': [k for k, v in s.get('views', {}).items() if v['ok']],
        'report_mb': round((out/'report.html').stat().st_size / 2**20, 2)})
