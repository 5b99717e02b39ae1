"Shared by the benchmarks: machine description and JSON output to bench/results/."
import json, os, platform, time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent/'results'


def machine() -> dict:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
            'python': platform.python_version(), 'gpu': gpu, 'platform': platform.platform(),
            'load_average_1_5_15_min': [round(v, 2) for v in os.getloadavg()]}   # other work on a shared machine slows every figure


def save(name: str, figures: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS/f'{name}.json'
    out = {'benchmark': name, 'when': time.strftime('%Y-%m-%d %H:%M:%S'), 'machine': machine(), **figures}
    path.write_text(json.dumps(out, indent=2) + '\n')
    print(json.dumps(figures, indent=2))
    print(f'-> {path}')
    return path
