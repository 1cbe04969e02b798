"""gifcat on one machine: the embedded AWS (moto), the stack from template.yaml, in-process Lambdas."""
