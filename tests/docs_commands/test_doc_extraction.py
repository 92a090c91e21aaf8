"""How doc_commands.py reads commands out of Markdown, on a page written for the purpose."""

from budget import budgeted
from doc_commands import block_commands, fenced_blocks

PAGE = """# A page

```bash
uv run apps/train --backend torch   # a comment
uv run apps/train --backend jax task=walker-walk \\
    steps=10 eval_tasks='a # b'
```

```text
uv run apps/train --backend torch preset=paper   # documentation only
```

```console
$ uv run apps/train list keys
seed: 1   # the output
```

```
mean, raw = split(pi(z))
```

```
pip install packages/mbdpo-core
```

```sh
V=$(mktemp -d)
uv run apps/plot $V --out $V/plots
```

```python
import mbdpo_core
```
"""


def commands() -> list[tuple[int, str]]:
    found = []
    for tag, first, body in fenced_blocks(PAGE):
        found += [(c.line, c.text) for c in block_commands("page.md", tag, first, body)]
    return found


def test_commands_of_each_fence_kind_with_their_lines():
    assert commands() == [
        (4, "uv run apps/train --backend torch"),
        (5, "uv run apps/train --backend jax task=walker-walk steps=10 eval_tasks='a # b'"),
        (14, "uv run apps/train list keys"),
        (23, "pip install packages/mbdpo-core"),
        (27, "V=$(mktemp -d)\nuv run apps/plot $V --out $V/plots"),
    ]


def test_the_budget_is_appended_to_the_command_as_written():
    online = budgeted("uv run apps/train --backend torch task=walker-walk steps=200000")
    assert online.startswith("uv run apps/train --backend torch task=walker-walk steps=200000 ")
    assert online.split().count("steps=510") == 1 and "seed_steps=500" in online.split()
    resumed = budgeted("uv run apps/train run_dir=runs/r resume=true steps=200000", 510)
    assert resumed == "uv run apps/train run_dir=runs/r resume=true steps=200000 steps=520"
    offline = budgeted("uv run apps/train mode=offline task=mt80 data_dir=d batch_size=1024")
    assert "batch_size=16" not in offline.split() and "eval_tasks=walker-walk" in offline.split()
    assert budgeted("uv run apps/train list keys") == "uv run apps/train list keys"
