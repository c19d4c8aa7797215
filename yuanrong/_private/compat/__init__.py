"""The rest of openYuanrong's surface on Ray: KV, streams, instance state, exit, and the calls that
Ray cannot offer (refused with a clear reason)."""
