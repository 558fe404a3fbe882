"""Run every benchmark and print its report."""

from __future__ import annotations

from bench import ingress


def main() -> None:
    """Run the benchmarks in turn."""
    print("== webhook ingress (DESIGN §8) ==", flush=True)
    for line in ingress.report(ingress.run()):
        print(line)


if __name__ == "__main__":
    main()
