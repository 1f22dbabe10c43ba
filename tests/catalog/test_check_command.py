"""`python -m gateway catalog check [DIR]`: exit 0 with a summary, or 1 naming every problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "catalog", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_packaged_catalog_passes() -> None:
    result = _check()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("catalog OK: 逢办必查联合奖惩措施目录 2026.11.0+")
    assert "14 list types, 8 matter types, 4 grades" in result.stdout
    assert "citations await verification" in result.stdout


def test_copy_passes_too(catalog_dir: Path) -> None:
    assert _check(str(catalog_dir)).returncode == 0


def test_broken_reference_fails_precisely(catalog_dir: Path) -> None:
    path = catalog_dir / "measures/punishment.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'list_types = ["wage_arrears"]', 'list_types = ["wage_arrear"]', 1
        ),
        encoding="utf-8",
    )
    result = _check(str(catalog_dir))
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        "measures/punishment.toml: measure #1 (P-BID-01) rule #3: unknown list type "
        "'wage_arrear'" in result.stderr
    )


def test_duplicate_code_fails_precisely(catalog_dir: Path) -> None:
    path = catalog_dir / "measures/management.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('code = "M-LIC-02"', 'code = "M-LIC-01"', 1),
        encoding="utf-8",
    )
    result = _check(str(catalog_dir))
    assert result.returncode == 1
    assert (
        "measures/management.toml: measure #2 (M-LIC-01): duplicate measure code "
        "'M-LIC-01' (first in measures/management.toml)" in result.stderr
    )


def test_measure_without_basis_fails_precisely(catalog_dir: Path) -> None:
    path = catalog_dir / "measures/punishment.toml"
    text = path.read_text(encoding="utf-8")
    block = 'basis = [{ doc = "enterprise_disclosure_regulation", article = "第十八条" }]'
    assert block in text
    path.write_text(text.replace(block, "", 1), encoding="utf-8")
    result = _check(str(catalog_dir))
    assert result.returncode == 1
    assert (
        "measures/punishment.toml: measure #2 (P-BID-02) rule #1: measure has no legal "
        "basis for this rule" in result.stderr
    )
