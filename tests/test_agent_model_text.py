"""What the model reads of a python call matches what k2-nano was trained on."""

from __future__ import annotations

import pytest

from k2nb.agent.python_tool import PythonTool
from k2nb.nano.curriculum import run_python

CODES = [
    "x = 3\nprint(x * 2)",
    "y = undefined_name + 1",
    "a = 5",
    "round(17 / 3, 2)",
    "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndf['b'].sum()",  # KeyError inside pandas
    "print(1)\n1/0",
]


def test_model_text_equals_curriculum_format():
    pytest.importorskip("pandas")
    tool, ns = PythonTool(), {}
    for i, code in enumerate(CODES, start=1):
        assert tool.run(code).to_model_text() == run_python(code, ns, cell=i)


def test_library_frames_stay_in_the_full_traceback_only():
    pytest.importorskip("pandas")
    r = PythonTool().run(CODES[4])
    text = r.to_model_text()
    assert "site-packages" not in text and "direct cause" not in text and text.endswith("KeyError: 'b'")
    assert any("site-packages" in line or "pandas" in line for line in r.traceback)
