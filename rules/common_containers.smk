# The helpers of rules/containers.smk (kept apart: snakemake --lint wants functions and rules in separate files).
# With the default config `containers`, a run with `--sdm apptainer` (or the legacy `--use-singularity`) first
# builds results/containers/{stack}.sif from envs/containers/{stack}.def (written from envs/lock.yaml by
# tools/envs.py), and every job that runs in an image lists that .sif as an input (container_input), so an edit of a
# definition rebuilds its image and reruns what ran in it. A configured image that cannot run the steps stops the
# run before any job (check_containers).
import re

import yaml
from snakemake.common import is_local_file
from snakemake.settings.types import DeploymentMethod

IN_CONTAINERS = (
    DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method
)
STACKS = ["tensorflow", "tensorrt"]
BUILT_IMAGE = "results/containers/{stack}.sif"
# Images known to lack what the steps need: NVIDIA's own TensorFlow and TensorRT images, and the lock's base images,
# to which the definitions add tf2onnx, ONNX Runtime, pycuda and the rest.
BARE_IMAGES = re.compile(r"^(docker://)?nvcr\.io/nvidia/(tensorflow|tensorrt):")
LOCK_BASES = {
    spec["base"]
    for spec in yaml.safe_load(Path(repo_path("envs", "lock.yaml")).read_text())[
        "stacks"
    ].values()
    if "base" in spec
}


def container_input(stack):
    """The image a job of `stack` runs in, as an input of the job; nothing when jobs do not run in containers or
    the image is a URL that Snakemake pulls itself."""
    image = config["containers"][stack]
    return image if IN_CONTAINERS and is_local_file(image) else []


def container_problem(stack):
    image = config["containers"][stack]
    built = BUILT_IMAGE.format(stack=stack)
    how = (
        f"set containers.{stack} to {built} (the default: the workflow builds it from "
        f"envs/containers/{stack}.def) or to an image built from that definition "
        f"(apptainer build {stack}.sif envs/containers/{stack}.def)"
    )
    if BARE_IMAGES.match(image) or image in LOCK_BASES:
        return f"containers.{stack} is {image}, which lacks the steps' packages (envs/lock.yaml): {how}"
    if (
        is_local_file(image)
        and image != built
        and not os.path.exists(container_image(stack))
    ):
        return f"containers.{stack} is {image}, which does not exist: {how}"
    return None


def check_containers():
    """Before any job: the images the jobs would run in can run them."""
    problems = [p for p in map(container_problem, STACKS) if p]
    if IN_CONTAINERS and problems:
        raise ValueError("invalid config: " + "; ".join(problems))


check_containers()
