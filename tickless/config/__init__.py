"""The configuration toolkit both tools use.

* ``yamlfile``: YAML with line numbers, duplicate keys refused, and bounds on
  nesting and alias expansion.
* ``interpolate``: ``${VAR}`` and ``${VAR:-default}``.
* ``durations``: ``30s``, ``15m``, ``4h``, ``1d`` or integer seconds.
* ``problems``: a located ``Problem``, one collector, one did-you-mean.
* ``variables``: environment variables read with the same rules and wording.
"""
