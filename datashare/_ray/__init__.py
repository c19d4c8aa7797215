"""Everything of datashare that talks to Ray: the only modules of the package that import ``ray``.

* :mod:`.naming`: names of datashare's detached actors, and the Ray namespace they live in.
* :mod:`.holder`: the per-node actor that owns published chunks.
* :mod:`.catalogue_actor`: the actor that runs the pure :class:`datashare.catalogue.Catalogue`.
* :mod:`.handles`: connecting, finding and caching actor handles, control calls, shutdown.
* :mod:`.store`: putting into and reading from the object store, and where objects are.
* :mod:`.pipeline`: handing chunks to holders while publishing.
* :mod:`.kv_storage`: where KV values are kept.
* :mod:`.ray_data`: Ray Data interop (it sits on top of :mod:`datashare.datasets`).
"""
