"""python-wechaty imports on this Python, through the compatibility module: an upgrade or a
dropped pin that breaks it fails here, not in production."""

import subprocess
import sys


def test_the_wechaty_stack_imports_in_a_fresh_interpreter(tmp_path):
    code = (
        "import bot.transports.wechaty_compat as wx\n"
        "import wechaty, dataclasses\n"
        "opts = wechaty.WechatyOptions(puppet_options=wx.PuppetOptions(end_point='127.0.0.1:1', token='t'))\n"
        "assert wx.PuppetService and wx.TEXT.value == 6\n"
        "print(wechaty.__name__, opts.puppet_options.end_point)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wechaty 127.0.0.1:1" in result.stdout
    assert not (tmp_path / ".wechaty").exists()  # its cache goes to ~/.cache, not the working folder


def test_only_the_compat_module_imports_wechaty():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    importers = sorted(
        str(p.relative_to(root))
        for p in (root / "bot").rglob("*.py")
        if any(
            line.lstrip().startswith(
                (
                    "import wechaty",
                    "from wechaty",
                    "import wechaty_puppet",
                    "from wechaty_puppet",
                    "from grpclib",
                    "from wechaty_grpc",
                )
            )
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importers == ["bot/transports/wechaty_compat.py"]
