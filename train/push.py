"""``python -m train.push --model weights/NAME --repo-id USER/NAME [--private] [--revision BRANCH] [--dry-run DIR]``

Publish a trained model to the Hugging Face Hub: config.json, model.safetensors, metrics.json and a model card.
The token comes from ``HF_TOKEN`` or the saved login (``hf auth login``) and is never printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import httpx2  # huggingface_hub 2.x's HTTP client: its transport errors mean no network
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from genre_model.loading import ModelNotFoundError, load_model
from genre_model.routing import DETECTOR_FILE


class PushError(RuntimeError):
    """A failure the user can fix; the message is one line."""


def build_upload_folder(model_dir: str | Path, dest: str | Path, repo_id: str) -> list[str]:
    """Write exactly what will be uploaded into ``dest``: weights, config, metrics, the card and the room detector
    (when the model has one)."""
    model_dir, dest = Path(model_dir), Path(dest)
    model = load_model(model_dir)  # proves the weights load before anything is published
    metrics_file = model_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else None
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "README.md").unlink(missing_ok=True)
    model.save_pretrained(dest, model_card_kwargs={"metrics": metrics, "repo_id": repo_id})
    for extra in (metrics_file, model_dir / DETECTOR_FILE):  # the room detector travels with the clean model
        if extra.exists():
            shutil.copy(extra, dest / extra.name)
    return sorted(p.name for p in dest.iterdir())


def push(model_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload ``model_dir`` to ``repo_id`` (created if needed); returns the commit URL."""
    token = get_token()  # HF_TOKEN, else the saved login
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access).")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            build_upload_folder(model_dir, tmp, repo_id)
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=f"Upload {Path(model_dir).name}"
            )
    except RepositoryNotFoundError:
        raise PushError(f"repository '{repo_id}' not found, or your token cannot see it.") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise PushError(f"no permission to write to '{repo_id}': use a token with write access.") from None
        raise PushError(f"the Hub refused the upload (HTTP {status}).") from None
    except (httpx2.TransportError, ConnectionError):
        raise PushError("cannot reach the Hugging Face Hub: check the network connection (or HF_ENDPOINT).") from None
    return str(commit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.push", description="Publish a trained model on the Hub.")
    parser.add_argument("--model", required=True, help="trained model folder, e.g. weights/chunk-cnn")
    parser.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (created if needed; default main)")
    parser.add_argument("--dry-run", metavar="DIR", help="only write the folder that would be uploaded into DIR")
    args = parser.parse_args(argv)
    try:
        if args.dry_run:
            files = build_upload_folder(args.model, args.dry_run, args.repo_id)
            print(f"dry run: {args.dry_run} holds what would be pushed to {args.repo_id}: {', '.join(files)}")
        else:
            commit = push(args.model, args.repo_id, args.private, args.revision)
            print(f"pushed {args.model} to {args.repo_id}: {commit}")
    except (PushError, ModelNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
