"""The front's image on a swarm target, in the project's registry.

A swarm front runs on every node (a global service), and a node can only start what it can pull:
an image that exists on the build engine alone starts on that engine's node and nowhere else. With
a registry, the front runs the base image under the registry's name, ``<registry>/mlspec-front``,
tagged with the base image's ID: pushed once (its layers are the serving images' own), then found.
"""

from __future__ import annotations

from collections.abc import Callable

import docker

from mlspec.apply import push

Log = Callable[[str], None]
REPOSITORY = "mlspec-front"


def front_tag(client: docker.DockerClient, base_image: str, registry: str) -> str:
    image_id = client.images.get(base_image).id.split(":")[-1]
    return f"{registry}/{REPOSITORY}:{image_id[:12]}"


def registry_front_image(client: docker.DockerClient, base_image: str, registry: str, on_log: Log) -> str:
    """``base_image`` on ``client``, tagged into ``registry`` and pushed unless it is there already."""
    tag = front_tag(client, base_image, registry)
    if not push.image_exists(client, tag, in_registry=True):
        repo, ref = push.split_tag(tag)
        client.images.get(base_image).tag(repo, ref)
        on_log(f"front image: push {tag} (every swarm node pulls it)")
        push.push_image(client, tag, on_log)
    return tag
