"""Official checkpoints into snnas networks: ``load_official(model, path)``.

The official Spikformer, Spikingformer, Spike-driven Transformer, QKFormer and SpikingResformer code
name their tensors their own way; each ``keymaps/*.yaml`` file says, as data, which official tensor
is which snnas tensor for the architectures it fits (the format is written at the top of
``keymaps/spikformer.yaml``). Loading:

1. reads the file as tensors only (torch's loader with ``weights_only=True``, through
   ``snnas.energy.untrusted``, or ``safetensors`` when that package is installed): a file that
   would run code is refused, never unpickled. Official checkpoints hold ``{'state_dict': ...}``
   (timm's saver, with its ``argparse.Namespace`` of arguments, read as plain data),
   ``{'model': ...}`` or a bare state dict, with or without DDP's ``module.`` prefix;
2. picks the key maps whose ``arch`` fields the network has, expands them over its stages and
   blocks, and takes the one the checkpoint's names fit best;
3. refuses in one line naming the missing or unexpected official tensors, or a shape that differs,
   else loads the mapped tensors (``strict``: every snnas tensor is covered).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import yaml

from snnas.nas.models.arch import ArchConfig

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OPTIONAL = ("num_batches_tracked",)  # not read in evaluation; older checkpoints lack it
WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "net")  # where checkpoints keep the weights
PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
SHOWN = 4  # names quoted in a refusal


class WeightsError(ValueError):
    """The checkpoint cannot be read, or does not fit the network; the message is one line."""


@dataclass
class KeyMap:
    name: str  # the file's stem
    family: str
    code: str
    data: dict
    pairs: list[tuple[str, str, bool]] = field(default_factory=list)  # (official, snnas, reshape)
    unused: set[str] = field(default_factory=set)
    fill: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Loaded:
    family: str
    code: str
    tensors: int  # official tensors loaded
    dropped: int  # official tensors the official forward never reads
    head: bool  # False: the classifier kept its own weights (another class count)


# ----------------------------------------------------------------------------- reading
def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint file holds, read as tensors only (see the module docstring)."""
    from snnas.energy.untrusted import RefusedFile, check_regular, read_torch_save

    try:
        check_regular(path)
        if path.suffix.lower() == ".safetensors":
            obj = _read_safetensors(path)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):  # timm saves its args: plain data
                obj = read_torch_save(path, origin=str(path))
    except RefusedFile as exc:
        raise WeightsError(str(exc)) from None
    return _state_dict(obj, path)


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"{path}: reading .safetensors needs the safetensors package (pip install safetensors), "
                           "or save the weights with torch.save") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({str(exc).strip()[:160]})") from None


def _state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # {'state_dict': {...}}, {'model': {...}}, or the state dict itself
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors (looked at the file and its "
                           f"{', '.join(repr(k) for k in WRAPPERS)} entries)")
    state = {str(k): v for k, v in obj.items()}
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


# ----------------------------------------------------------------------------- key maps
def keymaps() -> list[dict]:
    """Every key map shipped with snnas (``keymaps/*.yaml``), as read, each with its ``name``."""
    folder = resources.files("snnas.nas.models") / "keymaps"
    maps = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            maps.append({"name": entry.name[:-5], **data})
    return maps


def _fits(data: dict, arch: ArchConfig) -> bool:
    for key, want in (data.get("arch") or {}).items():
        have = getattr(arch, key)
        if (list(have) if isinstance(have, tuple) else have) != want:
            return False
    if "stems" in data and arch.stem not in data["stems"]:
        return False
    if arch.num_stages > 1 and "downsample" not in data:
        return False
    return all(kind in data["blocks"] for kind in arch.attention)


def _line(text: str, where: dict) -> tuple[list[tuple[str, str]], bool]:
    """One ``OFFICIAL -> SNNAS [(reshape)]`` line with its indices filled in, ``{bn}`` expanded."""
    reshape = text.rstrip().endswith("(reshape)")
    official, snnas = (part.strip() for part in text.replace("(reshape)", "").split("->"))
    official, snnas = official.format(bn="{bn}", **where), snnas.format(bn="{bn}", **where)
    if "{bn}" in official:
        return [(official.replace("{bn}", b), snnas.replace("{bn}", b)) for b in BN], reshape
    return [(official, snnas)], reshape


def _places(arch: ArchConfig):
    """(section, indices) for every place a map's lines apply: stem, each downsampling, each block, head."""
    yield "stem", {}
    i = 0
    for s, depth in enumerate(arch.depths):
        if s > 0:
            yield "downsample", {"s": s, "s1": s + 1}
        for j in range(depth):
            first = 2 * j + (1 if s > 0 else 0)
            yield arch.attention[s], {"i": i, "s": s, "j": j, "s1": s + 1, "attn_pos": first, "mlp_pos": first + 1}
            i += 1
    yield "head", {}


def expand(data: dict, arch: ArchConfig) -> KeyMap:
    """The map ``data`` written out for ``arch``: every (official, snnas) pair, the unused official
    names and the snnas tensors it fills."""
    km = KeyMap(data["name"], data["family"], data["code"], data)
    for section, where in _places(arch):
        if section == "stem":
            lines = data["stems"][arch.stem] if "stems" in data else data.get("stem", [])
        elif section in ("downsample", "head"):
            lines = data.get(section, [])
        else:
            lines = data["blocks"][section]
        for text in lines:
            pairs, reshape = _line(text, where)
            km.pairs += [(o, n, reshape) for o, n in pairs]
        if section not in ("stem", "downsample", "head"):
            for text in data.get("unused", []):
                km.unused.add(text.format(**where))
            for text in data.get("fill", []):
                target, value = (part.strip() for part in text.split("="))
                km.fill[target.format(**where)] = yaml.safe_load(value)
    return km


def candidates(arch: ArchConfig) -> list[KeyMap]:
    """The key maps that fit ``arch``, written out for it."""
    return [expand(data, arch) for data in keymaps() if _fits(data, arch)]


# ----------------------------------------------------------------------------- matching and loading
def _names(keys, total: int) -> str:
    shown = sorted(keys)[:SHOWN]
    more = f", ... ({total - len(shown)} more)" if total > len(shown) else ""
    return ", ".join(shown) + more


def _mismatch(km: KeyMap, state: dict, head: bool) -> tuple[list[str], list[str]]:
    """(missing, unexpected) official names of ``state`` under ``km``."""
    wanted = {o for o, n, _ in km.pairs if head or not n.startswith("head.")}
    missing = [k for k in wanted - set(state) if not k.endswith(OPTIONAL)]
    known = wanted | km.unused | {o for o, n, _ in km.pairs if n.startswith("head.")}
    unexpected = [k for k in state if k not in known]
    return missing, unexpected


def _choose(state: dict, arch: ArchConfig, path: Path, head: bool) -> KeyMap:
    maps = candidates(arch)
    if not maps:
        families = sorted({d["family"] for d in keymaps()})
        raise WeightsError(f"--weights: no official key map fits this architecture (stem {arch.stem}, attention "
                           f"{'/'.join(arch.attention)}, residual {arch.residual}); maps exist for "
                           f"{', '.join(families)} (their zoo entries)")
    scored = sorted(maps, key=lambda km: sum(map(len, _mismatch(km, state, head))))
    best = scored[0]
    missing, unexpected = _mismatch(best, state, head)
    if missing or unexpected:
        parts = [f"missing {len(missing)} key(s): {_names(missing, len(missing))}" if missing else "",
                 f"unexpected {len(unexpected)} key(s): {_names(unexpected, len(unexpected))}" if unexpected else ""]
        raise WeightsError(f"{path}: does not match the official {best.family} layout of this architecture "
                           f"({best.code}): {'; '.join(p for p in parts if p)}")
    return best


def _tensor(value: torch.Tensor, official: str, target: str, shape: torch.Size, reshape: bool, path: Path):
    if tuple(value.shape) == tuple(shape):
        return value
    if reshape and value.numel() == shape.numel():
        return value.reshape(shape)
    raise WeightsError(f"{path}: {official} has shape {list(value.shape)}; {target} needs {list(shape)} "
                       "(the checkpoint is of another size of this family)")


def map_state(state: dict, model: torch.nn.Module, path: Path, *, head: bool = True) -> tuple[dict, KeyMap]:
    """The snnas state dict for ``model`` from an official ``state`` (see ``load_official``)."""
    km = _choose(state, model.arch, path, head)
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for official, target, reshape in km.pairs:
        if target.startswith("head.") and not head:
            out[target] = own[target]
        elif official in state:
            out[target] = _tensor(state[official], official, target, own[target].shape, reshape, path)
        else:  # an optional BatchNorm counter
            out[target] = own[target]
        out[target] = out[target].to(own[target].dtype)
    for target, value in km.fill.items():
        out[target] = torch.full_like(own[target], value)
    left = sorted(set(own) - set(out))
    if left:
        raise WeightsError(f"key map {km.name}: covers no official tensor for {_names(left, len(left))}")
    return out, km


def load_official(model: torch.nn.Module, path: Path, *, head: bool = True) -> Loaded:
    """Load an official checkpoint into ``model`` (an snnas network of the matching family).
    ``head=False`` keeps the model's own classifier (fine-tuning to another class count)."""
    path = Path(path)
    state = read_checkpoint(path)
    mapped, km = map_state(state, model, path, head=head)
    model.load_state_dict(mapped, strict=True)
    return Loaded(km.family, km.code, len([o for o, _, _ in km.pairs if o in state]),
                  len([k for k in state if k in km.unused]), head)
