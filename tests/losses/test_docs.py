"""docs/losses.md is generated from the registry and fails a test when it is stale."""

from __future__ import annotations

import inspect

import pytest
import torch

import losses
from losses import docs
from losses.base import Loss


def test_docs_losses_md_is_up_to_date():
    assert docs.OUTPUT.exists(), f"{docs.OUTPUT} is missing: run `{docs.COMMAND}`"
    assert docs.OUTPUT.read_text() == docs.render(), f"docs/losses.md is stale: run `{docs.COMMAND}` and commit it"


@pytest.mark.parametrize("name", losses.available())
def test_every_registered_loss_has_a_row_with_formula_and_every_hyperparameter(name):
    entry = docs.describe(name)
    assert entry.formula, f"loss {name!r} has no docstring to take the formula from"
    params = [p for p in inspect.signature(losses.spec(name).cls.__init__).parameters if p != "self"]
    for param in params:
        assert f"`{param}=" in entry.hyperparameters
    row = next(line for line in docs.render().splitlines() if line.startswith(f"| [`{name}`]") or line.startswith(f"| `{name}`"))
    assert entry.formula in row and entry.hyperparameters in row


def test_sentences_do_not_break_at_et_al_nor_inside_code():
    text = "Focal ``-a (1 - p)^g log p.`` (Lin et al. 2017). Equal to ``torchvision.ops.x``. Use it e.g. for detection."
    assert docs.sentences(text) == [
        "Focal ``-a (1 - p)^g log p.`` (Lin et al. 2017).",
        "Equal to ``torchvision.ops.x``.",
        "Use it e.g. for detection.",
    ]


def test_split_docstring_finds_formula_and_use_and_the_library_functions_named():
    doc = """Contrastive ``1/2 d^2`` or ``1/2 max(0, m - d)^2`` (Hadsell, Chopra and LeCun 2006).

    As torch's HingeEmbeddingLoss on squared distances, see ``torch.nn.functional.pairwise_distance``.
    For metric learning with pairs; Müller et al. 2019 compare it."""
    formula, use = docs.split_docstring(doc)
    assert formula == "Contrastive ``1/2 d^2`` or ``1/2 max(0, m - d)^2`` (Hadsell, Chopra and LeCun 2006)."
    assert use.startswith("As torch's") and use.endswith("compare it.")
    # papers come from the class's ``citations``, never from the docstring's text
    assert docs.library_names(doc) == ["torch's HingeEmbeddingLoss", "``torch.nn.functional.pairwise_distance``"]


def test_table_cells_escape_pipes_and_use_markdown_code():
    assert docs.markdown("``|x - y|`` or |r|") == "`\\|x - y\\|` or \\|r\\|"


@pytest.fixture
def extra_loss():
    """A loss of another kind, registered for one test: the generator must pick it up by itself."""

    @losses.register("zz_test_abs", kind="regression")
    class AbsoluteError(Loss):
        """Absolute error ``|pred - target|`` (Laplace 1774).

        Matches ``torch.nn.L1Loss``. For medians rather than means.
        """

        citations = ("Laplace 1774",)

        def __init__(self, scale: float = 1.0, reduction: str = "mean") -> None:
            super().__init__(reduction)
            self.scale = scale

        def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return self.reduce(self.scale * (pred - target).abs())

    try:
        yield "zz_test_abs"
    finally:
        losses.unregister("zz_test_abs")


def test_a_newly_registered_loss_gets_its_own_kind_section_and_row(extra_loss):
    text = docs.render()
    assert "## regression" in text
    row = next(line for line in text.splitlines() if line.startswith("| `zz_test_abs` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells == [
        "`zz_test_abs`",
        "`(pred, target)`",
        "Absolute error `\\|pred - target\\|` (Laplace 1774).",
        "`scale=1.0`, `reduction=mean` (none, mean, sum)",
        "Laplace 1774; `torch.nn.L1Loss`",
        "Matches `torch.nn.L1Loss`. For medians rather than means.",
    ]
    assert text.index("## classification") < text.index("## regression")  # kinds in registry order


def test_check_mode_fails_on_a_stale_file_and_passes_once_written(tmp_path, capsys):
    out = tmp_path / "losses.md"
    out.write_text("# old\n")
    assert docs.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert docs.main(["--output", str(out)]) == 0
    assert docs.main(["--check", "--output", str(out)]) == 0


def reference_cell(name: str) -> str:
    """The reference cell of the row of loss ``name`` in the generated table."""
    row = next(line for line in docs.render().splitlines() if line.startswith((f"| [`{name}`]", f"| `{name}` |")))
    return row.strip("|").split(" | ")[4].strip()


@pytest.mark.parametrize("name", [n for n in losses.available() if losses.spec(n).cls.citations])
def test_every_declared_citation_reaches_the_table_in_order(name):
    citations = losses.spec(name).cls.citations
    cited = reference_cell(name).split("; ")[: len(citations)]
    assert cited == [docs.markdown(c) for c in citations]


@pytest.fixture
def comma_cited_loss():
    """A loss citing its paper with a comma, ``Lin et al., 2017``: the docstring regex the table once used dropped it."""

    @losses.register("zz_test_comma", kind="classification")
    class CommaCited(Loss):
        """Sigmoid focal ``-(1 - p_t)^2 log p_t`` (Lin et al., 2017), and a surname in lower case (van den Oord et al., 2018)."""

        citations = ("Lin et al., 2017", "van den Oord et al., 2018")

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return self.reduce(logits - target)

    try:
        yield "zz_test_comma"
    finally:
        losses.unregister("zz_test_comma")


def test_a_citation_written_with_a_comma_reaches_the_table_whole(comma_cited_loss):
    assert reference_cell(comma_cited_loss) == "Lin et al., 2017; van den Oord et al., 2018"
