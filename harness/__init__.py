"""The test and benchmark harness: the code that starts and watches real services and the
pipeline's processes for the tests (tests/) and the benchmarks (bench/).

Both import it and neither owns it: the process supervisor (`processes`), the pipeline's
processes under it (`pipeline`: Celery workers and beat, `flask consume`), a run's own resources
on the shared local services (`services`, `resources`), waiting with a deadline (`waiting`), what
drives the API (`httpclient`, `script`, `arenas`, `boards`) and sums up latencies (`stats`), and
the chaos matrix built on them (`chaos`, `faults`, `chaos_load`, `poison`). It runs from the
checkout, never from an installed package; it imports neither tests nor bench, and production
code (arena/, tasks/) never imports it.
"""
