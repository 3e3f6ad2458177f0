"""The pure layers, one module per layer: raw bytes → bronze (`bronze`), bronze → typed silver
(`silver`), silver → gold analytics (`gold`). Arrow tables in, Arrow tables out: no Dagster, no
storage, so each layer is testable on its own and the importer validates a file with the very same
rules the assets apply."""
