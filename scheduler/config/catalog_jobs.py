"""Jobs that call into the catalog: its configuration is checked with theirs.

A ``call: catalog.refresh:refresh_all`` job whose catalog.yaml is broken
would fail every run; ``validate`` (and ``run``, and a reload) report the
catalog's problems, located in catalog.yaml, with the job's own. The
scheduler may import the catalog; the catalog never imports the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping

from scheduler.config.spec import CallTarget, JobSpec
from tickless.config.problems import Problem

CATALOG_PACKAGE = "catalog"


def calls_catalog(spec: JobSpec) -> bool:
    target = spec.target
    if not isinstance(target, CallTarget):
        return False
    module = target.reference.partition(":")[0]
    return module == CATALOG_PACKAGE or module.startswith(CATALOG_PACKAGE + ".")


def catalog_problems(specs: list[JobSpec], env: Mapping[str, str], file: str | None) -> list[Problem]:
    """The catalog configuration's problems (variables and catalog.yaml), if any, and one line per job that needs it."""
    # The import succeeded already: the jobs' own `call:` imported a catalog module.
    from catalog.errors import CatalogError, ConfigError
    from catalog.library import Catalog

    try:
        Catalog.from_env(env).close()
    except ConfigError as exc:
        found = list(exc.problems)
    except CatalogError as exc:
        found = [Problem(str(exc))]
    else:
        return []
    where = found[0].file or "the catalog's variables"
    return [*found, *(
        Problem(
            f"calls into the catalog, whose configuration has {len(found)} problem(s) (listed with {where}); "
            "every run would fail", file, spec.line, f"job {spec.name!r}", "call",
        )
        for spec in specs
    )]
