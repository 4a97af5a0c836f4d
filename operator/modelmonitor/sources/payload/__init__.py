"""The payload-log source: KServe's logged requests and responses as a rolling window.

:mod:`.server` receives the CloudEvents, :mod:`.store` keeps one :mod:`.window` per
monitor, and a run takes a snapshot of its window as the current data.
"""
