"""Bring your own cluster: the project's sql/ and transforms on an existing SingleStore cluster
and existing Kafka brokers (``matchstream cluster pack`` / ``matchstream cluster apply``).

* :mod:`~matchstream.cluster.config`: the cluster file (addresses, credentials, where things are).
* :mod:`~matchstream.cluster.archive`: the transforms as one ``.tar.gz`` every leaf can unpack.
* :mod:`~matchstream.cluster.render`: sql/ as the cluster gets it (placeholders filled, each
  transform pointed into the archive).
* :mod:`~matchstream.cluster.apply`: the rendered statements sent to the aggregator, in order.
"""
