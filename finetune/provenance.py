"""What the shipped trader adapter was built from, by content hash: the policy that labelled its data (its
teacher), the base model, the LoRA recipe and the command that made it; and the check that the policy shipping
today is still that teacher.

`provenance.json` sits beside the adapter. `trader finetune all --ship` writes it; `trader finetune model`
says which policy taught the model and whether that is the default policy; a test fails when the adapter and
its record drift apart, and the teacher test says when the default policy was changed without re-distilling.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from trader_core.errors import ModelError

PROVENANCE = "provenance.json"


class Provenance(BaseModel):
    adapter_sha256: str = Field(description="finetune.convert.trader_model.adapter_digest of the adapter")
    teacher_policy_sha256: str = Field(description="rl.policy.policy_digest of the policy that labelled the data")
    teacher_policy: str = Field(description="that policy in words: what it was and where it lived")
    base: str
    base_sha256: str
    recipe: str = Field(description="the LoRA YAML, as a project path")
    recipe_sha256: str
    data_recipe: str = Field(description="the command that distilled the data and trained the adapter")


class TeacherCheck(BaseModel):
    matches: bool
    teacher_sha256: str
    policy_sha256: str
    policy: str
    message: str


def read_provenance(adapter_dir: str | Path) -> Provenance:
    path = Path(adapter_dir) / PROVENANCE
    try:
        return Provenance.model_validate_json(path.read_text())
    except OSError:
        raise ModelError(f"{path} is missing: the adapter does not say what it was built from; "
                         "ship adapters with `trader finetune all --ship`") from None
    except ValidationError as exc:
        raise ModelError(f"{path} is not a valid provenance record ({exc.error_count()} errors, first: "
                         f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})") from None


def check_teacher(adapter_dir: str | Path, policy: str | Path = "default") -> TeacherCheck:
    """Whether `policy` (a run directory, or 'default') is the policy that taught the adapter."""
    from rl.policy import policy_digest

    record = read_provenance(adapter_dir)
    current = policy_digest(policy)
    same = current == record.teacher_policy_sha256
    name = "the default policy" if str(policy) == "default" else str(policy)
    message = (f"taught by {name} (policy {current[:12]})" if same else
               f"taught by policy {record.teacher_policy_sha256[:12]} ({record.teacher_policy}); {name} is "
               f"{current[:12]}: its answers follow the old policy until re-distilled ({record.data_recipe})")
    return TeacherCheck(matches=same, teacher_sha256=record.teacher_policy_sha256, policy_sha256=current,
                        policy=str(policy), message=message)


def write_provenance(adapter_dir: str | Path, *, policy: str | Path, teacher_policy: str, base: str,
                     base_sha256: str, recipe: str | Path, data_recipe: str) -> Provenance:
    """Record what `adapter_dir` was built from (called when an adapter is shipped)."""
    from finetune.artifacts import content_digest
    from finetune.convert.trader_model import adapter_digest
    from rl.policy import policy_digest
    from trader_core.paths import portable_path

    record = Provenance(adapter_sha256=adapter_digest(Path(adapter_dir)), teacher_policy_sha256=policy_digest(policy),
                        teacher_policy=teacher_policy, base=base, base_sha256=base_sha256,
                        recipe=portable_path(recipe), recipe_sha256=content_digest(recipe), data_recipe=data_recipe)
    (Path(adapter_dir) / PROVENANCE).write_text(json.dumps(record.model_dump(), indent=1) + "\n")
    return record
