"""README.md from nbs/index.ipynb.

With Quarto installed this is `nbdev_readme`. Without it (Quarto cannot be installed on every machine), the same
notebook is converted directly: markdown cells as they are, visible code cells as Python blocks, `#|` directives and
hidden cells dropped, image paths made relative to the repository root.
"""
import json, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def convert(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            parts.append(re.sub(r'\]\((images/[^)]+)\)', r'](nbs/\1)', src))
        elif c['cell_type'] == 'code':
            lines = src.splitlines()
            if any(l.strip() in ('#| hide', '#|hide') for l in lines): continue
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if code: parts.append(f'```python\n{code}\n```')
    return '\n\n'.join(parts).strip() + '\n'

if __name__ == '__main__':
    if shutil.which('quarto'):
        sys.exit(subprocess.call([str(Path(sys.executable).parent/'nbdev_readme')], cwd=ROOT))
    (ROOT/'README.md').write_text(convert(ROOT/'nbs'/'index.ipynb'))
    print('README.md written from nbs/index.ipynb')
