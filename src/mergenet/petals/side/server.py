"""Run a Petals server offline from local folders, with no change to Petals' files.

Two functions are replaced at runtime before ``petals.cli.run_server.main`` runs:

* ``validate_version`` asks PyPI for the newest Petals on every start; a private swarm on
  loopback must not depend on the internet, so it only logs the version here.
* ``petals.utils.peft.check_peft_repository`` lists files on the Hugging Face hub, so
  ``--adapters /local/folder`` always failed; the replacement checks the local folder for
  ``adapter_model.safetensors`` (and falls back to the original for hub names).

A model folder written by transformers 5 is served through a translated view (see
``compat``), so a raw core-version folder can be given as it is.

Usage: ``python -m mergenet.petals.side.server MODEL_DIR [run_server flags...]``.
"""

from __future__ import annotations

import os
import sys


def _install_replacements() -> None:
    import petals.cli.run_server as run_server
    import petals.utils.peft as peft

    original_check = peft.check_peft_repository

    def check_peft_repository(repo_id: str) -> bool:
        if os.path.isdir(repo_id):
            return os.path.isfile(os.path.join(repo_id, "adapter_model.safetensors"))
        return original_check(repo_id)

    def validate_version() -> None:
        import petals

        run_server.logger.info(f"Running Petals {petals.__version__} (version check skipped)")

    peft.check_peft_repository = check_peft_repository
    run_server.validate_version = validate_version


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _install_replacements()
    import petals.cli.run_server as run_server

    from mergenet.petals.side.compat import readable_folder

    sys.argv[0] = "petals.cli.run_server"
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        sys.argv[1] = readable_folder(sys.argv[1])
    run_server.main()


if __name__ == "__main__":
    main()
