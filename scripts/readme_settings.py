"""Rewrite README.md's environment table from iris_assets/settings.py (a test checks they agree).

.venv/bin/python scripts/readme_settings.py
"""

import re
import sys
from pathlib import Path

from iris_assets import settings

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
table = re.compile(r"\| variable \| meaning \| default \|\n\|---\|---\|---\|\n(?:\|.*\|\n)+")
if not table.search(text):
    sys.exit("README.md has no environment table")
readme.write_text(table.sub(settings.markdown_table() + "\n", text, count=1))
