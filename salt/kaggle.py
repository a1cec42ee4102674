"""`python -m salt.kaggle --zip FILE --data DATA`: unpack the Kaggle download into the Kaggle layout.

`kaggle competitions download -c tgs-salt-identification-challenge` gives one zip holding train.zip
(images/ and masks/), test.zip (images/), train.csv, depths.csv and sample_submission.csv. This puts
them under DATA as DATA/train/{images,masks}, DATA/test/images and the CSVs, then checks the result.
Nothing is written under DATA unless the whole download unpacks and passes the checks.
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import zipfile
from pathlib import Path

from salt.cli import UserError, run_cli
from salt.data import check_dataset
from salt.layout import Data

COMMAND = "kaggle competitions download -c tgs-salt-identification-challenge"
CSVS = Data.CSV_NAMES


def _extract(archive: zipfile.ZipFile, dest: Path, source: str) -> None:
    for member in archive.namelist():
        name = Path(member)
        if member.endswith("/") or ".." in name.parts or name.is_absolute():
            continue
        if name.name in CSVS and len(name.parts) == 1:
            (dest / name.name).write_bytes(archive.read(member))
        elif name.name.endswith(".zip") and name.stem in ("train", "test"):
            with zipfile.ZipFile(io.BytesIO(archive.read(member))) as inner:
                _extract_split(inner, dest / name.stem, f"{source}:{member}")
        elif len(name.parts) >= 3 and name.parts[-3] in ("train", "test") and name.suffix == ".png":
            target = dest / name.parts[-3] / name.parts[-2] / name.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


def _extract_split(archive: zipfile.ZipFile, dest: Path, source: str) -> None:
    for member in archive.namelist():
        name = Path(member)
        if name.suffix == ".png" and len(name.parts) >= 2 and name.parts[-2] in ("images", "masks"):
            target = dest / name.parts[-2] / name.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


def unpack(zip_path: Path, data_dir: Path) -> dict:
    """Unpacks the competition zip into a temporary folder, checks it, then moves it to ``data_dir``."""
    if Data(data_dir).train_csv.exists():
        print(f"{data_dir}: already there")
        return check_dataset(data_dir)
    if not zip_path.is_file():
        raise UserError(f"{zip_path}: no Kaggle download here; run `{COMMAND}` (needs a Kaggle account and "
                        f"~/.kaggle/kaggle.json), then `make data DOWNLOAD=path/to/the.zip`")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=data_dir.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                _extract(archive, tmp, str(zip_path))
        except zipfile.BadZipFile as e:
            raise UserError(f"{zip_path}: not a readable zip file ({e})") from None
        summary = check_dataset(tmp)
        tmp.rename(data_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m salt.kaggle", description=__doc__.splitlines()[0])
    p.add_argument("--zip", type=Path, default=Path("tgs-salt-identification-challenge.zip"))
    p.add_argument("--data", type=Path, default=Path("data/tgs"))
    args = p.parse_args(argv)
    summary = unpack(args.zip, args.data)
    print(f"{args.data}: {summary}")
    return 0


if __name__ == "__main__":
    run_cli(main)
