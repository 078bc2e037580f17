"""A small Go text/template renderer, faithful to what the Modelfile's TEMPLATE uses, with Ollama's values.

No Ollama binary installs here, so the Modelfile's TEMPLATE is rendered in Python. Covered: text, `{{- -}}` trim
markers, `if / else if / else`, `range` (with `$i, $x :=`), variable declarations, `$` and field chains,
parenthesised calls, string and integer literals, and the functions `and or not eq ne len slice index` (Go's
builtins) and `json` (Ollama's: `json.Marshal`, compact). Values are shaped as Ollama's `api` types of v0.14 to
v0.33 (api/types.go): a Tool prints as JSON (its String method has a value receiver), a ToolFunction as Go
struct syntax (pointer receiver: not called, ollama/ollama#14601), tool properties and call arguments keep their
insertion order; `json.Marshal` escapes <, > and & as Go does. Anything else raises, rather than guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass
class GoStruct:
    """A Go struct value: fields in declaration order as (Go name, JSON name, value, omitempty)."""

    type_name: str
    fields: list[tuple[str, str, Any, bool]]
    stringer: bool = False  # String() with a value receiver: fmt (and template printing) calls it

    def get(self, name: str) -> Any:
        for go_name, _, value, _ in self.fields:
            if go_name == name:
                return value
        raise KeyError(f"{self.type_name} has no field {name}")


class OrderedJSON(dict):
    """Ollama's orderedmap (tool properties, call arguments): a Go struct to templates, an object to json."""


def _empty(v: Any) -> bool:
    return v is None or v is False or v == 0 and not isinstance(v, bool) or (hasattr(v, "__len__") and len(v) == 0)


def go_json(v: Any) -> str:
    """Go's json.Marshal: compact, struct fields in order with omitempty, HTML characters escaped."""
    def enc(x: Any) -> Any:
        if isinstance(x, GoStruct):
            return {js: enc(val) for _, js, val, omit in x.fields if not (omit and _empty(val))}
        if isinstance(x, dict):
            return {k: enc(val) for k, val in x.items()}
        if isinstance(x, list):
            return [enc(i) for i in x]
        return x
    text = json.dumps(enc(v), separators=(",", ":"), ensure_ascii=False)
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                      ("\u2029", "\\u2029")):
        text = text.replace(char, esc)
    return text


def go_print(v: Any) -> str:
    """fmt's %v as text/template prints a value."""
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, GoStruct):
        return go_json(v) if v.stringer else "{" + " ".join(go_print(val) for _, _, val, _ in v.fields) + "}"
    if isinstance(v, OrderedJSON):
        return go_json(v)  # measured on v0.33: call arguments print as compact JSON
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_print(val)}" for k, val in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_print(i) for i in v) + "]"
    raise TypeError(f"cannot print {type(v).__name__}")


# -- Ollama's values (api.Tool, api.Message, template.Values) ----------------------------------------------------
def _property(p: dict) -> GoStruct:
    types = p.get("type")
    return GoStruct("ToolProperty", [
        ("AnyOf", "anyOf", [_property(a) for a in p.get("anyOf", [])], True),
        ("Type", "type", types, True), ("Items", "items", p.get("items"), True),
        ("Description", "description", p.get("description", ""), True), ("Enum", "enum", p.get("enum"), True),
        ("Properties", "properties", OrderedJSON({k: _property(v) for k, v in p["properties"].items()})
         if "properties" in p else None, True),
        ("Required", "required", p.get("required"), True)])


def tool(t: dict) -> GoStruct:
    fn, params = t["function"], t["function"].get("parameters") or {}
    parameters = GoStruct("ToolFunctionParameters", [
        ("Type", "type", params.get("type", ""), False), ("Defs", "$defs", params.get("$defs"), True),
        ("Items", "items", params.get("items"), True), ("Required", "required", params.get("required"), True),
        ("Properties", "properties", OrderedJSON({k: _property(v) for k, v in params.get("properties", {}).items()}),
         False)])
    function = GoStruct("ToolFunction", [("Name", "name", fn["name"], False),
                                         ("Description", "description", fn.get("description", ""), True),
                                         ("Parameters", "parameters", parameters, False)])
    return GoStruct("Tool", [("Type", "type", t.get("type", "function"), False), ("Items", "items", None, True),
                             ("Function", "function", function, False)], stringer=True)


def message(m: dict) -> GoStruct:
    calls = [GoStruct("ToolCall", [("ID", "id", c.get("id", ""), True), ("Function", "function", GoStruct(
        "ToolCallFunction", [("Index", "index", i, False), ("Name", "name", c["function"]["name"], False),
                             ("Arguments", "arguments", OrderedJSON(c["function"]["arguments"]), False)]), False)])
             for i, c in enumerate(m.get("tool_calls") or [])]
    return GoStruct("Message", [("Role", "role", m["role"], False), ("Content", "content", m.get("content", ""), False),
                                ("ToolCalls", "tool_calls", calls, True)])


def chat_values(messages: list[dict], tools: list[dict] | None = None) -> dict:
    """template.Values for an /api/chat request, collated as Ollama does (system messages joined into .System,
    consecutive messages of one role merged, tool messages kept apart)."""
    system, collated = [], []
    for m in messages:
        if m["role"] == "system":
            system.append(m.get("content", ""))
        if collated and collated[-1]["role"] == m["role"] and m["role"] != "tool":
            collated[-1] = {**collated[-1], "content": collated[-1].get("content", "") + "\n\n" + m.get("content", "")}
        else:
            collated.append(dict(m))
    return {"System": "\n\n".join(system), "Messages": [message(m) for m in collated],
            "Tools": [tool(t) for t in tools or []], "Response": "", "Think": False, "IsThinkSet": False}


# -- the template engine -----------------------------------------------------------------------------------------
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|:=|\(|\)|,|\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|'
                    r'\.(?:[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)?|[A-Za-z_][A-Za-z0-9_]*|-?\d+)')
_FUNCS = {"and", "or", "not", "eq", "ne", "len", "slice", "index", "json"}


def _tokens(text: str) -> list[str]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if not found:
            raise SyntaxError(f"unsupported template syntax at {text[pos:]!r}")
        out.append(found.group(1))
        pos = found.end()
    return out


def _parse(source: str) -> list:
    """Text and actions -> a tree: ("text", s) | ("act", decl, expr) | ("if", [(expr, body)], else) |
    ("range", decl, expr, body, else)."""
    items, pos = [], 0
    for found in _ACTION.finditer(source):
        items.append(("text", source[pos:found.start()]))
        items.append(("act", found.group(2).strip(), bool(found.group(1)), bool(found.group(3))))
        pos = found.end()
    items.append(("text", source[pos:]))
    for i, item in enumerate(items):  # trim markers eat the white space beside them
        if item[0] == "act":
            if item[2] and items[i - 1][0] == "text":
                items[i - 1] = ("text", items[i - 1][1].rstrip(" \t\r\n"))
            if item[3] and items[i + 1][0] == "text":
                items[i + 1] = ("text", items[i + 1][1].lstrip(" \t\r\n"))
    stream = iter(items)

    def block(stops: tuple[str, ...]) -> tuple[list, str | None]:
        body: list = []
        for item in stream:
            if item[0] == "text":
                body.append(item) if item[1] else None
                continue
            words = item[1]
            head = words.split()[0] if words else ""
            if head in stops:
                return body, words
            if head == "if":
                branches, rest = [], words[2:]
                while True:
                    inner, end = block(("else", "end"))
                    branches.append((_expr(_tokens(rest)), inner))
                    if end == "end":
                        body.append(("if", branches, []))
                        break
                    if end.startswith("else if"):
                        rest = end[len("else if"):]
                        continue
                    otherwise, _ = block(("end",))
                    body.append(("if", branches, otherwise))
                    break
            elif head == "range":
                decl, expr = _decl(_tokens(words[5:]))
                inner, end = block(("else", "end"))
                otherwise = block(("end",))[0] if end == "else" else []
                body.append(("range", decl, expr, inner, otherwise))
            elif head in ("with", "define", "template", "block", "break", "continue"):
                raise SyntaxError(f"{head} is not supported by this renderer")
            else:
                decl, expr = _decl(_tokens(words))
                body.append(("act", decl, expr))
        if stops:
            raise SyntaxError(f"missing {{{{ end }}}} (expected one of {stops})")
        return body, None

    return block(())[0]


def _decl(tokens: list[str]) -> tuple[list[str], Any]:
    if ":=" in tokens:
        at = tokens.index(":=")
        return [t for t in tokens[:at] if t != ","], _expr(tokens[at + 1:])
    return [], _expr(tokens)


def _expr(tokens: list[str]) -> Any:
    """A command: a function call with arguments, or one operand."""
    terms, pos = [], 0
    while pos < len(tokens):
        tok = tokens[pos]
        if tok == "(":
            depth, end = 1, pos + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[end], 0)
                end += 1
            terms.append(_expr(tokens[pos + 1:end - 1]))
            pos = end
            continue
        terms.append(("lit", json.loads(tok)) if tok.startswith('"') else
                     ("lit", int(tok)) if re.fullmatch(r"-?\d+", tok) else ("ref", tok))
        pos += 1
    if terms and terms[0][0] == "ref" and terms[0][1] in _FUNCS:
        return ("call", terms[0][1], terms[1:])
    if len(terms) != 1:
        raise SyntaxError(f"unsupported command {tokens}")
    return terms[0]


def _field(value: Any, name: str) -> Any:
    if isinstance(value, GoStruct):
        return value.get(name)
    if isinstance(value, dict):
        return value.get(name)  # missingkey=zero
    raise TypeError(f"can't evaluate field {name} in {type(value).__name__}")


def _truth(v: Any) -> bool:
    return isinstance(v, GoStruct) or not _empty(v)


class _Scope:
    def __init__(self, root: Any):
        self.root, self.vars = root, {"$": root}

    def eval(self, expr: Any, dot: Any) -> Any:
        kind = expr[0]
        if kind == "lit":
            return expr[1]
        if kind == "call":
            return self.call(expr[1], expr[2], dot)
        ref = expr[1]
        if ref.startswith("$"):
            name, *chain = ref.split(".")
            value = self.vars[name]
        else:
            chain, value = [p for p in ref.split(".") if p], dot
        for name in chain:
            value = _field(value, name)
        return value

    def call(self, name: str, args: list, dot: Any) -> Any:
        if name in ("and", "or"):  # Go 1.18+: evaluated left to right, stopping at the deciding one
            value = None
            for arg in args:
                value = self.eval(arg, dot)
                if _truth(value) != (name == "and"):
                    return value
            return value
        vals = [self.eval(a, dot) for a in args]
        if name == "not":
            return not _truth(vals[0])
        if name == "eq":
            return any(vals[0] == other for other in vals[1:])
        if name == "ne":
            return vals[0] != vals[1]
        if name == "len":
            return len(vals[0])
        if name == "slice":
            return vals[0][vals[1]:vals[2]] if len(vals) > 2 else vals[0][vals[1]:]
        if name == "index":
            value = vals[0]
            for key in vals[1:]:
                value = value[key] if not isinstance(value, dict) else value.get(key)
            return value
        return go_json(vals[0])  # json

    def run(self, nodes: list, dot: Any, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "act":
                value = self.eval(node[2], dot)
                if node[1]:
                    self.vars[node[1][0]] = value
                else:
                    out.append(go_print(value))
            elif kind == "if":
                for expr, body in node[1]:
                    if _truth(self.eval(expr, dot)):
                        self.run(body, dot, out)
                        break
                else:
                    self.run(node[2], dot, out)
            else:
                _, decl, expr, body, otherwise = node
                items = self.eval(expr, dot) or []
                saved = dict(self.vars)
                for i, item in enumerate(items):
                    if len(decl) == 2:
                        self.vars[decl[0]], self.vars[decl[1]] = i, item
                    elif decl:
                        self.vars[decl[0]] = item
                    self.run(body, item, out)
                if not items:
                    self.run(otherwise, dot, out)
                self.vars = saved  # variables declared in the range end with it


def render(source: str, values: dict) -> str:
    """Execute a Go template on `values` (a dict of Ollama's template.Values)."""
    out: list[str] = []
    _Scope(values).run(_parse(source), values, out)
    return "".join(out)
