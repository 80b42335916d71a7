"""How work runs: the jobs every runner calls (``jobs``), the embedded scheduler, the
correlation worker in a thread (``worker``) or a child process (``worker_process``),
leader election between API processes, the garbage-collector policy entry points apply
(``heap``), and Prometheus metrics."""
