"""Every path and address the SQL gives SingleStore on the container path exists in the build.

The SQL is what scripts/docker_up.sh sends (``--print-sql``: ``sql/*.sql`` with
docker/pipeline-vars.env substituted); until sql/10_pipelines.sql exists, the pipeline statements
of the contract in issue 5 stand in for it. Each CREATE PIPELINE is parsed with matchstream's own
pipeline parser, and then: the transform file is COPY'd to that path by the Dockerfile, the
``--spec`` file too, ``--model-dir`` is the mount point of a named volume of the singlestore
service, and the Kafka address is a container listener the broker advertises under the compose
service's name.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from matchstream.ddl import ast, is_pipeline_statement, parse_statement, split_statements
from tests.docker.layout import (
    CONTRACT_PIPELINES_SQL,
    DOCKER,
    DOCKERFILE,
    DOCKERIGNORE,
    PIPELINES_SQL,
    REPO,
    VAR_NAMES,
    interpolation_default,
    load_compose,
    read_dockerfile,
    read_vars,
    render_sql,
)

SEMVER_TAG = re.compile(r"^\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile():
    return read_dockerfile()


@pytest.fixture(scope="module")
def rendered_sql(tmp_path_factory: pytest.TempPathFactory) -> str:
    if PIPELINES_SQL.exists():
        return render_sql()
    contract_dir = tmp_path_factory.mktemp("sql")
    (contract_dir / "10_pipelines.sql").write_text(CONTRACT_PIPELINES_SQL, encoding="utf-8")
    return render_sql(contract_dir)


@pytest.fixture(scope="module")
def pipelines(rendered_sql: str) -> dict[str, ast.CreatePipeline]:
    result = {}
    for stmt in split_statements(rendered_sql, "rendered sql"):
        if is_pipeline_statement(stmt.text):
            node = parse_statement(stmt.text)
            if isinstance(node, ast.CreatePipeline):
                result[node.name] = node
    return result


def transform_args(pipeline: ast.CreatePipeline) -> dict[str, str]:
    assert pipeline.transform is not None, f"pipeline {pipeline.name} has no WITH TRANSFORM"
    words = shlex.split(pipeline.transform.args)
    return {w: v for w, v in zip(words, [*words[1:], ""], strict=True) if w.startswith("--")}


def transform_path(pipeline: ast.CreatePipeline) -> str:
    assert pipeline.transform is not None
    uri = pipeline.transform.uri
    # Both spellings the SingleStore docs and examples use for a file on the aggregator.
    for prefix in ("file://localhost/", "file:///"):
        if uri.startswith(prefix):
            return "/" + uri[len(prefix):]
    raise AssertionError(f"pipeline {pipeline.name}: transform URI {uri!r} is not a local file")


# --- docker/pipeline-vars.env -------------------------------------------------------------


def test_pipeline_vars_define_exactly_the_contract_names() -> None:
    values = read_vars()
    assert tuple(values) == VAR_NAMES
    for name in ("TRANSFORMS", "MODEL_DIR", "FEATURES"):
        path = values[name]
        assert PurePosixPath(path).is_absolute() and not path.endswith("/"), (name, path)
    # Inserted verbatim inside SQL string literals, so they must not need quoting.
    assert all(not re.search(r"[\s'\"\\;]", v) for v in values.values()), values


def test_a_placeholder_missing_from_pipeline_vars_fails_the_render(tmp_path: Path) -> None:
    (tmp_path / "10_pipelines.sql").write_text("SELECT '${NOT_A_CONTRACT_NAME}';\n")
    with pytest.raises(AssertionError, match="unknown placeholder"):
        render_sql(tmp_path)


def test_the_rendered_sql_has_no_placeholder_left(rendered_sql: str) -> None:
    code = "\n".join(s.text for s in split_statements(rendered_sql))
    assert "${" not in code


# --- the pipelines against the image and the compose file ---------------------------------


# Every pipeline of sql/10_pipelines.sql: the three demo pipelines and their reject pipelines.
PIPELINES = ["training", "scoring", "outcomes", "training_rejects", "scoring_rejects",
             "outcomes_rejects"]


def test_each_pipeline_reads_its_topic_through_a_transform(pipelines) -> None:
    # alerts_published loads the alerts topic back as it is (README, "Alerts on Kafka").
    assert set(pipelines) == set(PIPELINES) | {"alerts_published"}
    assert pipelines["alerts_published"].source.topic == "alerts"
    assert pipelines["alerts_published"].transform is None
    for name in ("training", "scoring", "outcomes"):
        assert pipelines[name].source.topic == name
        assert transform_path(pipelines[name]).endswith(f"/{TRANSFORMS[name]}")
        # The reject pipeline reads the same topic with the same batches and the same spec.
        rejects = pipelines[f"{name}_rejects"]
        assert rejects.source.topic == name
        assert transform_path(rejects).endswith("/rejects.py")
        assert transform_args(rejects)["--rows"] == name
        assert transform_args(pipelines[name])["--on-bad-row"] == "skip"
    for name in ("training", "outcomes"):
        assert transform_args(pipelines[f"{name}_rejects"])["--spec"] == transform_args(
            pipelines[name])["--spec"]


TRANSFORMS = {"training": "train.py", "scoring": "score.py", "outcomes": "outcomes.py"}


@pytest.mark.parametrize("name", PIPELINES)
def test_transform_file_is_copied_into_the_image(name, pipelines, dockerfile) -> None:
    path = transform_path(pipelines[name])
    copies = dockerfile.copies()
    assert path in copies, f"{path} (pipeline {name}) is not COPY'd by {DOCKERFILE.name}"
    source = REPO / copies[path]
    assert source.is_file(), f"COPY source {copies[path]} does not exist"
    assert source.read_text(encoding="utf-8").startswith("#!"), "transforms run by their shebang"
    # Executable for the database user: the Dockerfile chmods the copied file.
    chmod = re.compile(rf"chmod 0?755 [^&]*{re.escape(path)}")
    assert any(chmod.search(i.text) for i in dockerfile.of("RUN")), (
        f"{path} is not made executable (chmod 0755) in {DOCKERFILE.name}"
    )


@pytest.mark.parametrize("name", PIPELINES)
def test_spec_file_is_copied_into_the_image(name, pipelines, dockerfile) -> None:
    spec = transform_args(pipelines[name]).get("--spec")
    if spec is None:
        # score.py reads the spec saved with each model version; only train.py needs --spec.
        assert name == "scoring", f"pipeline {name} passes no --spec"
        return
    copies = dockerfile.copies()
    assert spec in copies, f"--spec {spec} (pipeline {name}) is not COPY'd by {DOCKERFILE.name}"
    assert copies[spec] == "data/features.json"


@pytest.mark.parametrize("name", ["training", "scoring"])
def test_model_dir_is_a_named_volume_owned_by_the_database_user(
    name, pipelines, compose, dockerfile
) -> None:
    model_dir = transform_args(pipelines[name]).get("--model-dir")
    assert model_dir, f"pipeline {name} passes no --model-dir"
    mounts = {}
    for entry in compose["services"]["singlestore"]["volumes"]:
        source, _, target = entry.partition(":")
        mounts[target.split(":")[0]] = source
    assert model_dir in mounts, f"--model-dir {model_dir} is not mounted on the singlestore service"
    volume = mounts[model_dir]
    assert not volume.startswith((".", "/", "~")), "a bind mount is not writable by UID 999"
    assert volume in compose["volumes"], f"volume {volume} is not declared"
    # Docker seeds an empty named volume with the image directory's owner: create it, give it to
    # the database user, and finish the image as that user.
    runs = " && ".join(i.text for i in dockerfile.of("RUN"))
    assert re.search(rf"mkdir -p {re.escape(model_dir)}\b", runs)
    assert re.search(rf"chown singlestore:singlestore {re.escape(model_dir)}\b", runs)
    assert dockerfile.user_at_end() == "singlestore"


def test_kafka_address_is_the_brokers_container_listener(pipelines, compose) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    advertised = (x.split(":", 1) for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = {name: address.removeprefix("//") for name, address in advertised}
    bound = {x.split(":", 1)[0]: x.rsplit(":", 1)[1] for x in env["KAFKA_LISTENERS"].split(",")}
    for name in PIPELINES:
        (broker,) = pipelines[name].source.brokers
        host, _, port = broker.partition(":")
        # The compose network resolves the service name (and the explicit hostname).
        assert host in {"kafka", kafka.get("hostname")}, broker
        matching = [n for n, address in listeners.items() if address == broker]
        assert matching, f"{broker} is not an advertised listener: {listeners}"
        (listener,) = matching
        assert bound[listener] == port, f"listener {listener} binds {bound[listener]}, not {port}"
        # The inter-broker listener is the container one; the host one must advertise localhost.
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == listener
    assert "PLAINTEXT_HOST" in listeners and listeners["PLAINTEXT_HOST"] == "localhost:9092"
    assert kafka["ports"] == ["127.0.0.1:9092:9092"], (
        "only the host listener is published, on 9092 of the loopback address")
    # The healthcheck goes through the address SingleStore uses.
    assert read_vars()["KAFKA"] in " ".join(kafka["healthcheck"]["test"])


# --- images, build context, secrets -------------------------------------------------------


def test_images_are_pinned(compose, dockerfile) -> None:
    kafka_image = compose["services"]["kafka"]["image"]
    repo, _, tag = kafka_image.partition(":")
    assert repo == "apache/kafka" and SEMVER_TAG.match(tag), kafka_image
    (base,) = dockerfile.of("FROM")
    image = base.text.split()[-1]
    assert image.startswith("ghcr.io/singlestore-labs/singlestoredb-dev:")
    dockerfile_tag = image.rsplit(":", 1)[1]
    assert SEMVER_TAG.match(dockerfile_tag), image
    # compose passes the tag as a build arg; its default must be the Dockerfile's pin.
    build = compose["services"]["singlestore"]["build"]
    assert interpolation_default(build["args"]["S2_DEV_TAG"]) == dockerfile_tag
    local_image = interpolation_default(compose["services"]["singlestore"]["image"])
    assert local_image.endswith(":" + dockerfile_tag)
    text = (DOCKER / "compose.yaml").read_text() + DOCKERFILE.read_text()
    assert not re.search(r":latest\b", text)


def test_every_build_input_passes_the_dockerignore(dockerfile) -> None:
    # The context is the repository root with an allow-list .dockerignore: a COPY or bind-mount
    # source missing from it fails the build, one not needed bloats it.
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    sources = set(dockerfile.copies().values())
    for inst in dockerfile.of("RUN"):
        sources |= set(re.findall(r"--mount=type=bind,source=([^,\s]+)", inst.text))
    for source in sources:
        source = source.rstrip("/")
        # Allowed itself, inside an allowed directory, or a directory holding allowed files.
        assert any(
            source == a or source.startswith(a + "/") or a.startswith(source + "/")
            for a in allowed
        ), f"{source} is excluded by {DOCKERIGNORE.name}"
        assert (REPO / source).exists(), source
    # The smoke step mounts data/ but reads only these two files from it.
    assert {"data/train.csv", "data/score.csv"} <= allowed


def test_transform_packages_are_pinned_by_the_lock() -> None:
    lock = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    wanted = [
        line.strip().lower()
        for line in (DOCKER / "singlestore" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(wanted) == {"numpy", "tensorflow"}
    assert set(wanted) <= lock


def test_packages_go_to_the_interpreter_the_shebang_finds(dockerfile) -> None:
    # `#!/usr/bin/env python3` with whatever PATH the engine passes (maybe none: then only
    # /bin:/usr/bin) resolves to /usr/bin/python3, so that interpreter must get the packages.
    for script in ("train.py", "score.py", "outcomes.py", "rejects.py"):
        first = (REPO / "transforms" / script).read_text().splitlines()[0]
        assert first == "#!/usr/bin/env python3", (script, first)
    installs = [i.text for i in dockerfile.of("RUN") if "pip install" in i.text]
    assert len(installs) == 2
    assert all(re.search(r"\bpython3 -m pip install\b", text) for text in installs)
    assert not any("venv" in i.text for i in dockerfile.of("RUN"))
    # ... and the build proves it, in an empty environment, as the database user.
    smoke = [i for i in dockerfile.of("RUN") if "smoke_transforms.py" in i.text]
    assert smoke and "env -i /usr/bin/python3" in smoke[0].text


def test_no_secret_is_committed(compose) -> None:
    env = compose["services"]["singlestore"]["environment"]
    assert env["ROOT_PASSWORD"].startswith("${SINGLESTORE_ROOT_PASSWORD:?")
    assert env["SINGLESTORE_LICENSE"] == "${SINGLESTORE_LICENSE:-}"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, check=False
    ).returncode
    assert ignored == 0, "docker/.env must be ignored by git"


# --- the build-time smoke check -------------------------------------------------------------


def run_smoke(transforms: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DOCKER / "singlestore" / "smoke_transforms.py"),
         "--transforms", str(transforms), "--features", str(REPO / "data" / "features.json"),
         "--data", str(REPO / "data"), "--path", f"{Path(sys.executable).parent}:/usr/bin:/bin"],
        capture_output=True, text=True, check=False, timeout=600,
    )


@pytest.mark.slow
def test_smoke_check_passes_with_the_real_transforms() -> None:
    # The check the image build runs; here with the venv's python3 first on PATH.
    result = run_smoke(REPO / "transforms")
    assert result.returncode == 0, result.stderr


def test_smoke_check_fails_with_a_broken_transform(tmp_path: Path) -> None:
    for name in ("train.py", "score.py"):
        script = tmp_path / name
        script.write_text("#!/usr/bin/env python3\nimport sys\nsys.exit('broken on purpose')\n")
        script.chmod(0o755)
    result = run_smoke(tmp_path)
    assert result.returncode != 0 and "broken on purpose" in result.stderr
