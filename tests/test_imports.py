"""No two modules of the packages import each other, directly or through others, and the packages depend
on each other one way (classifier/segmenter -> training -> salt; ensemble -> salt; bench on top): read
from the source's import statements, module by module."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("salt", "segmenter", "classifier", "ensemble", "training", "bench")
# what each package may import besides itself
ALLOWED = {"salt": set(), "training": {"salt"}, "segmenter": {"salt", "training"},
           "classifier": {"salt", "training", "segmenter"}, "ensemble": {"salt"},
           "bench": {"salt", "training", "segmenter", "classifier"}}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set]:
    """{module: the modules among `sources` it imports}; sources: {module: (source text, is a package)}.
    ``from a.b import c`` imports a.b, and a.b.c where that is a module; relative imports are resolved."""
    graph = {}
    for name, (text, is_package) in sources.items():
        deps = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in sources}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                if base in sources:
                    deps.add(base)
                deps |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in sources}
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def the_graph() -> dict[str, set]:
    return import_graph({name: (path.read_text(), path.name == "__init__.py") for name, path in modules().items()})


def test_the_checker_finds_a_cycle_through_a_package():
    sources = {"p": ("from p.reg import get\n", True), "p.reg": ("from p import a\n", False),
               "p.a": ("from . import b\nimport p.b\n", False), "p.b": ("import os\n", False),
               "q": ("from p.a import x\n", False)}
    graph = import_graph(sources)
    assert graph == {"p": {"p.reg"}, "p.reg": {"p", "p.a"}, "p.a": {"p", "p.b"}, "p.b": set(), "q": {"p.a"}}
    assert cycles(graph) == [["p", "p.a", "p.reg"]]


def test_no_two_modules_import_each_other():
    assert cycles(the_graph()) == []


def test_packages_depend_one_way():
    wrong = sorted(f"{a} imports {b}" for a, deps in the_graph().items() for b in deps
                   if a.split(".")[0] != b.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]])
    assert not wrong, wrong
