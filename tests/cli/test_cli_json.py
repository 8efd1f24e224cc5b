"""``--fields`` and ``--jq``: the paths understood and how values print."""

from __future__ import annotations

import json

import pytest

from embedtune.cli import json_output as cli_json

ANSWER = json.dumps(
    [
        {"id": "a", "status": "completed", "metrics": {"after": {"mrr@10": 0.5}}},
        {"id": "b", "status": "failed", "metrics": None},
    ]
)


@pytest.mark.parametrize(
    ("path", "printed"),
    [
        (".[].id", "a\nb"),
        (
            ".[0]",
            json.dumps({"id": "a", "status": "completed", "metrics": {"after": {"mrr@10": 0.5}}}),
        ),
        ('.[0].metrics.after["mrr@10"]', "0.5"),
        (".[1].metrics.after", "null"),
        (".[-1].status", "failed"),
        (".[5]", "null"),
    ],
)
def test_jq_paths_print_like_gh_jq(path: str, printed: str) -> None:
    assert cli_json.render(ANSWER, None, cli_json.parse_path(path)) == printed


def test_fields_keep_only_the_named_keys_of_each_object() -> None:
    rendered = cli_json.render(ANSWER, cli_json.parse_fields("id, status"), None)
    assert json.loads(rendered) == [
        {"id": "a", "status": "completed"},
        {"id": "b", "status": "failed"},
    ]


@pytest.mark.parametrize("path", ["id", ".[", ".a b"])
def test_a_path_jq_would_not_read_is_refused(path: str) -> None:
    with pytest.raises(cli_json.JsonPathError):
        cli_json.parse_path(path)


def test_options_after_the_subcommand_move_before_it() -> None:
    args = ["task", "list", "--jq", ".[].id", "--fields=id", "--", "--jq"]
    assert cli_json.hoist(args) == ["--jq", ".[].id", "--fields=id", "task", "list", "--", "--jq"]
