"""Where data comes from: the reference, and the sources of a run's current data and SLIs.

* :mod:`.base`: what a source is (the :class:`~.base.Source` protocol, what a run gives
  it and what it gives back);
* :mod:`.builtin`: the sources, keyed by the spec's data type, in the order a run asks
  them: :mod:`.probe_source` (over the HTTP prober :mod:`.probe` and :mod:`.endpoint`),
  :mod:`.payload_source` (over the collector in :mod:`.payload`) and
  :mod:`.prometheus_source` (over :mod:`.prometheus` and :mod:`.sli_templates`);
* :mod:`.reference`: the reference data, one loader per ``spec.reference`` source;
* :mod:`.registry`: the keyed registry both are kept in.

docs/sources.md describes each source and how to add one.
"""
