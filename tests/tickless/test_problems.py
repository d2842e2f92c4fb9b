"""Located problems: their text, their order, one collector, one did-you-mean."""

from __future__ import annotations

from enum import StrEnum

from tickless.config.problems import Problem, Problems, closest, did_you_mean


def test_a_problem_reads_file_line_subject_field_message() -> None:
    assert str(Problem("must be > 0", "jobs.yaml", 7, "job 'a'", "every")) == "jobs.yaml:7: job 'a': every: must be > 0"
    assert str(Problem("cannot read", "jobs.yaml")) == "jobs.yaml: cannot read"
    assert str(Problem("NAME='' must be a positive integer (seconds)")) == "NAME='' must be a positive integer (seconds)"


def test_collectors_for_parts_share_one_list_and_sort_by_line() -> None:
    problems = Problems("jobs.yaml")
    job = problems.about("job 'b'")
    job.add(9, "http", "late")
    problems.add(2, None, "early")
    problems.note("VAR=x: bad")
    assert [str(problem) for problem in problems.in_order()] == [
        "VAR=x: bad", "jobs.yaml:2: early", "jobs.yaml:9: job 'b': http: late",
    ]
    assert len(job) == 3


def test_unknown_keys_are_named_with_a_correction() -> None:
    problems = Problems("f.yaml", "job 'a'")
    problems.check_keys({"evrey": 1, "http": 2}, ("every", "http"))
    assert [str(problem) for problem in problems] == [
        "f.yaml: job 'a': evrey: unknown key (did you mean 'every'?); allowed: every, http",
    ]


def test_did_you_mean_offers_text_even_for_enum_choices() -> None:
    class Kind(StrEnum):
        EVERY = "every"

    assert did_you_mean("evrey", tuple(Kind)) == " (did you mean 'every'?)"
    assert closest("zzz", ["every"]) is None and did_you_mean("zzz", ["every"]) == ""
