"""The test and benchmark harness: the code that starts and watches real services and the
pipeline's processes for the tests (tests/) and the benchmarks (bench/).

Both import it and neither owns it: the process supervisor (`processes`), the pipeline's
processes under it (`pipeline`: Celery workers and beat, `flask consume`), a run's own resources
on the shared local services (`services`, `resources`), waiting with a deadline (`waiting`), the
HTTP client and the scripted arenas that drive the API (`httpclient`, `script`, `arenas`,
`boards`), and the chaos matrix run on top of them (`chaos`, `faults`, `chaos_load`,
`poison`). It runs from the checkout, never from an installed package, and imports neither
tests nor bench; production code (arena/, tasks/) never imports it.
"""
