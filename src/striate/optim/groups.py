"""Parameter groups: parameters that share learning-rate and weight-decay multipliers (Caffe's `lr_mult` and
`decay_mult`), as an optimizer's `params` and from rules over a model's layers.

    opt = st.optim.SGD([{"params": bn_biases, "lr_mult": 64}, {"params": others}], lr=0.01, weight_decay=5e-4)
    opt = st.optim.SGD(st.optim.param_groups(net, [{"match": "BatchNorm.bias", "lr_mult": 64}]), lr=0.01)

A group's learning rate is the optimizer's `lr` × `lr_mult` and its weight decay the optimizer's `weight_decay`
× `decay_mult` (both multipliers default to 1), so a schedule that sets `optimizer.lr` scales every group alike:
torch's param groups with `lr = lr·lr_mult` under a LambdaLR.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from numbers import Real

from ..nn.module import Module, Parameter

GROUP_KEYS = ("params", "lr_mult", "decay_mult")
RULE_KEYS = ("match", "lr_mult", "decay_mult")


def _collect(params) -> list[Parameter]:
    """A Module → its parameters; an iterable → its Parameters. Frozen ones (requires_grad False) are skipped."""
    if isinstance(params, Module):
        params = params.parameters()
    elif isinstance(params, Parameter):
        params = [params]
    if not isinstance(params, Iterable):
        raise TypeError(f"expected a Module or an iterable of Parameters, got {type(params).__name__}")
    out, seen = [], set()
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected Parameters, got an element of type {type(p).__name__}")
        if id(p) in seen:
            raise ValueError(f"{p!r} appears more than once in the parameter list")
        seen.add(id(p))
        if p.requires_grad:
            out.append(p)
    return out


def _multipliers(owner: str, spec: dict, keys: tuple[str, ...]) -> dict[str, float]:
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ValueError(f"{owner}: unknown keys {unknown} in {spec!r}; known: {', '.join(keys)}")
    out = {}
    for name in ("lr_mult", "decay_mult"):
        value = spec.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
            raise ValueError(f"{owner}: {name} must be a number ≥ 0, got {value!r} in {spec!r}")
        out[name] = float(value)
    return out


def collect_groups(owner: str, params) -> tuple[list[Parameter], list[dict], list[int]]:
    """`params` (a Module, an iterable of Parameters, or a list of group dicts `{"params", "lr_mult",
    "decay_mult"}`) → (the trainable parameters, the groups `{"lr_mult", "decay_mult", "size"}`, each
    parameter's group index). Without group dicts: one group of multipliers 1."""
    if isinstance(params, Module | Parameter) or not isinstance(params, Iterable):
        flat = _collect(params)
        return flat, [{"lr_mult": 1.0, "decay_mult": 1.0, "size": len(flat)}], [0] * len(flat)
    params = list(params)
    if not any(isinstance(g, dict) for g in params):
        flat = _collect(params)
        return flat, [{"lr_mult": 1.0, "decay_mult": 1.0, "size": len(flat)}], [0] * len(flat)
    if not all(isinstance(g, dict) for g in params):
        raise TypeError(f"{owner}: give parameters or parameter groups (dicts with 'params'), not a mixture")
    flat, groups, group_of, owner_of = [], [], [], {}
    for k, spec in enumerate(params):
        if "params" not in spec:
            raise ValueError(f"{owner}: parameter group {k} has no 'params'")
        mults = _multipliers(f"{owner}: parameter group {k}", spec, GROUP_KEYS)
        members = _collect(spec["params"])
        for p in members:
            if id(p) in owner_of:
                raise ValueError(f"{owner}: {p!r} is in parameter groups {owner_of[id(p)]} and {k}")
            owner_of[id(p)] = k
        flat += members
        group_of += [k] * len(members)
        groups.append({**mults, "size": len(members)})
    return flat, groups, group_of


def check_rules(rules) -> list[dict]:
    """`rules` as a list of dicts `{"match": str, "lr_mult": ≥ 0, "decay_mult": ≥ 0}`, or ValueError quoting
    the bad rule."""
    if not isinstance(rules, list | tuple) or not all(isinstance(r, dict) for r in rules):
        raise ValueError(f"parameter-group rules must be a list of tables, got {rules!r}")
    for rule in rules:
        _multipliers("parameter-group rule", rule, RULE_KEYS)
        if not isinstance(rule.get("match"), str) or not rule["match"].strip():
            raise ValueError(f"parameter-group rule {rule!r}: give match = a layer kind and parameter "
                             "('BatchNorm.bias') or a glob over parameter names ('*.bias', '3.weight')")
    return list(rules)


TORCH_NAMES = {"gamma": "weight", "beta": "bias"}  # a norm layer's γ and β, as PyTorch (and airbench) name them


def matches(pattern: str, full_name: str, module: Module, name: str) -> bool:
    """Does rule `pattern` select parameter `name` of `module` (full name `full_name`)? Either the layer kind
    (the class name or a base class's) then optionally '.' and the parameter's name or glob ('BatchNorm.bias',
    'Conv2d', 'Linear.*'), or a glob over the full parameter name ('*.bias', '3.weight'). A norm layer's
    `gamma` and `beta` also answer to PyTorch's names, `weight` and `bias`."""
    names = {name, TORCH_NAMES.get(name, name)}
    kind, _, param = pattern.partition(".")
    if any(cls.__name__ == kind for cls in type(module).__mro__) and any(fnmatchcase(n, param or "*") for n in names):
        return True
    prefix = full_name[: len(full_name) - len(name)]
    return any(fnmatchcase(prefix + n, pattern) for n in names)


def param_groups(model: Module, rules) -> list[dict]:
    """The parameter groups of `model` that `rules` choose: each parameter goes to the first rule that matches it
    (`matches`), the rest to a last group of multipliers 1 (left out when empty). A rule that matches no
    parameter is a ValueError quoting it. Pass the result as an optimizer's `params`."""
    rules = check_rules(rules)
    chosen: list[list[Parameter]] = [[] for _ in rules]
    rest: list[Parameter] = []
    for mname, m in model.named_modules():
        for pname, p in m._parameters.items():
            full = f"{mname}.{pname}" if mname else pname
            k = next((k for k, r in enumerate(rules) if matches(r["match"].strip(), full, m, pname)), None)
            (rest if k is None else chosen[k]).append(p)
    for rule, members in zip(rules, chosen, strict=True):
        if not members:
            names = ", ".join(n for n, _ in list(model.named_parameters())[:8])
            raise ValueError(f"parameter-group rule match = {rule['match']!r} matches no parameter of the model "
                             f"(a layer kind such as 'BatchNorm.bias', or a glob over names such as {names})")
    groups = [{"params": members, "lr_mult": float(r.get("lr_mult", 1.0)),
               "decay_mult": float(r.get("decay_mult", 1.0))} for r, members in zip(rules, chosen, strict=True)]
    return groups + ([{"params": rest}] if rest else [])
