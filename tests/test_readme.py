"""The README's set-up commands are the ones CI runs."""

from conftest import ROOT


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    install, tests = first_block[0], first_block[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install.split(" && ")[0] in ci
    assert "--demo" in install
    assert tests in ci
