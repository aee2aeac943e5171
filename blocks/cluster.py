"""KubernetesCluster block: a cluster's kubeconfig (kept secret), context and namespace."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, VersionApi, rest
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from prefect.blocks.core import Block
from prefect.blocks.core import schema_extra as block_schema_extra
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from core.errors import ConfigError, CredentialsError, TransientError
from core.names import is_dns_label

logger = logging.getLogger(__name__)

_WHOLE = "paste a whole kubeconfig, e.g. the output of `kubectl config view --raw --flatten`"
CONNECT_TIMEOUT = 10.0  # seconds to open a connection to the API server
_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key")  # -> "<key>-data"


def _entry(entries: list[Any], name: Any) -> dict[str, Any] | None:
    """Return the `cluster`/`context`/`user` body of the named kubeconfig list entry."""
    for item in entries:
        if isinstance(item, dict) and item.get("name") == name:
            body = next((v for k, v in item.items() if k != "name"), None)
            return body if isinstance(body, dict) else {}
    return None


def _names(entries: list[Any]) -> str:
    return ", ".join(repr(e.get("name")) for e in entries if isinstance(e, dict)) or "none"


def _parse(text: str) -> dict[str, Any]:
    """Parse kubeconfig YAML; error messages never quote its content (it holds credentials)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"kubeconfig is not valid YAML{where}: {_WHOLE}") from None
    keys = ("clusters", "contexts", "users")
    missing = [k for k in keys if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"kubeconfig has no {'/'.join(missing)} list: {_WHOLE}")
    return data


def _select(data: dict[str, Any], context: str | None) -> tuple[str, dict[str, Any]]:
    """Return the name of the context to use and the body of the cluster it points at."""
    name = context or data.get("current-context")
    body = _entry(data["contexts"], name)
    if body is None:
        what = f"context {name!r} is not in the kubeconfig" if context else "no current-context"
        raise ValueError(f"{what}: set context to one of: {_names(data['contexts'])}")
    cluster = _entry(data["clusters"], body.get("cluster"))
    if cluster is None or not str(cluster.get("server", "")).startswith(("https:", "http:")):
        raise ValueError(
            f"kubeconfig context {name!r} needs cluster {body.get('cluster')!r} with an http(s) "
            f"server URL; defined clusters: {_names(data['clusters'])}"
        )
    if body.get("user") and _entry(data["users"], body["user"]) is None:
        raise ValueError(
            f"kubeconfig context {name!r} names user {body['user']!r}, which is not defined; "
            f"defined users: {_names(data['users'])}"
        )
    return str(name), cluster


def _strings(node: Any) -> list[str]:
    """All strings (4+ characters) inside a parsed YAML node."""
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    return [node] if isinstance(node, str) and len(node) >= 4 else []


def _redact(text: str, data: dict[str, Any] | None) -> str:
    """Replace every string found under the kubeconfig's users (tokens, keys...) with '***'."""
    for secret in sorted(_strings((data or {}).get("users")), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:300]


class ApiTimeout(TransientError):
    """The API server accepted a call and did not answer it in time (retried as transient)."""


class TimedRESTClient(rest.RESTClientObject):
    """The client's REST layer with a timeout on every call that did not set its own.

    The kubernetes client waits forever by default: a server that accepts the connection and never
    answers would hold a release, and its lock, for good.
    """

    def __init__(self, configuration: Configuration, timeout: float) -> None:
        """Wrap the REST layer of one configuration; `timeout` is the read timeout in seconds."""
        super().__init__(configuration)
        self.timeout = timeout
        self.server = configuration.host

    def _default(self, url: str) -> tuple[float, float]:
        query = parse_qs(urlsplit(url).query)
        read = self.timeout
        if query.get("watch") in (["true"], ["1"]):  # a watch is quiet until its own timeout
            read += float((query.get("timeoutSeconds") or ["1800"])[0])
        return (min(self.timeout, CONNECT_TIMEOUT), read)

    def request(  # noqa: D102 (the client's own signature and docs)
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        timeout = _request_timeout or self._default(url)
        try:
            return super().request(method, url, headers, body, post_params, timeout)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            if not isinstance(reason, urllib3.exceptions.TimeoutError):
                raise
            seconds = timeout[1] if isinstance(timeout, tuple) else timeout
            raise ApiTimeout(
                f"Kubernetes API server {self.server} did not answer {method} "
                f"{urlsplit(url).path} within {seconds:g}s ({type(reason).__name__})"
            ) from None


def _not_a_reference(schema: dict[str, Any], model: type[Block]) -> None:
    """Prefect's block schema, refusing an object that is a block reference.

    Every field has a default, so `{"$ref": ...}` (what the run form's selector and `block_ref`
    send) would also pass as a cluster's own fields, and a parameter validated against "one of
    the block or a reference" would be refused as both.
    """
    block_schema_extra(schema, model)
    schema["not"] = {"required": ["$ref"]}


class KubernetesCluster(Block):
    """A Kubernetes cluster: kubeconfig (secret) or in-cluster service account, plus namespace."""

    model_config = ConfigDict(  # never echo a kubeconfig in errors
        hide_input_in_errors=True, json_schema_extra=_not_a_reference
    )

    _block_type_name = "KYB Kubernetes Cluster"
    _block_type_slug = "kyb-kubernetes-cluster"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/2d0b896006ad463b49c28aaac14f31e00e32cfab-250x250.png"
    _documentation_url = "https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/"
    _description = "A Kubernetes cluster the pipeline deploys to; its kubeconfig is a secret."
    _code_example = """
    ```python
    from blocks import KubernetesCluster
    from kubernetes.client import AppsV1Api

    cluster = KubernetesCluster.load("BLOCK_NAME")
    print(cluster.check())  # the API server's gitVersion
    with cluster.api_client() as api:
        AppsV1Api(api).list_namespaced_deployment(cluster.namespace)
    ```
    """

    kubeconfig: SecretStr | None = Field(
        default=None,
        description="The kubeconfig YAML text (e.g. `kubectl config view --raw --flatten`).",
    )
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account instead of a kubeconfig."
    )
    context: str | None = Field(
        default=None, description="The kubeconfig context to use; default: its current-context."
    )
    namespace: str = Field(default="default", description="The namespace to work in.")
    request_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds one API call may wait for the server's answer (a watch: its own "
        "timeout plus this); a server that accepts and never answers fails the call then.",
    )

    @field_validator("kubeconfig")
    @classmethod
    def _valid_kubeconfig(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse(value.get_secret_value())
        return value

    @field_validator("namespace")
    @classmethod
    def _valid_namespace(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(
                f"namespace {value!r} is not a DNS-1123 label: use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesCluster:
        if (self.kubeconfig is None) == (not self.in_cluster):
            raise ValueError(
                "kubeconfig / in_cluster: set exactly one of them, either kubeconfig (the YAML "
                "text, or use KubernetesCluster.from_kubeconfig_file) or in_cluster=True"
            )
        if self.in_cluster and self.context:
            raise ValueError("context only applies to a kubeconfig: unset it when in_cluster=True")
        if self.kubeconfig is not None:
            _select(_parse(self.kubeconfig.get_secret_value()), self.context)
        return self

    @classmethod
    def from_kubeconfig_file(
        cls, path: str | os.PathLike[str], context: str | None = None, namespace: str = "default"
    ) -> KubernetesCluster:
        """Build the block from a kubeconfig file, inlining the files it references.

        Args:
            path: The kubeconfig file.
            context: The context to use; None keeps the file's current-context.
            namespace: The namespace to work in.

        Raises:
            ConfigError: The file or a file it references cannot be read.
        """
        path = Path(path).expanduser()
        try:
            data = _parse(path.read_text())
            for item in [*data["clusters"], *data["users"]]:
                body = next((v for k, v in item.items() if k != "name"), None) or {}
                for key in [k for k in _FILE_KEYS if isinstance(body.get(k), str)]:
                    raw = (path.parent / body.pop(key)).read_bytes()
                    body[f"{key}-data"] = base64.b64encode(raw).decode()
                if isinstance(body.get("tokenFile"), str):
                    body["token"] = (path.parent / body.pop("tokenFile")).read_text().strip()
        except (OSError, ValueError, AttributeError) as exc:
            reason = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else exc
            raise ConfigError(f"cannot read kubeconfig {path}: {reason}") from None
        return cls(kubeconfig=yaml.safe_dump(data), context=context, namespace=namespace)

    def _label(self) -> str:
        slug, name = self.get_block_type_slug(), self._block_document_name
        return f"'{slug}/{name}'" if name else f"{slug} (unsaved)"

    def _parsed(self) -> dict[str, Any]:
        assert self.kubeconfig is not None
        return _parse(self.kubeconfig.get_secret_value())

    def server(self) -> str:
        """Return the API server URL of the selected context (or of the in-cluster service).

        Raises:
            ConfigError: in_cluster is set but this process does not run in a pod.
        """
        if self.in_cluster:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT")
            if not host or not port:
                raise ConfigError(
                    f"block {self._label()} has in_cluster=True, but KUBERNETES_SERVICE_HOST/PORT "
                    "are not set: run inside a pod or give the block a kubeconfig"
                )
            return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return str(_select(self._parsed(), self.context)[1]["server"]).rstrip("/")

    def api_client(
        self, pool_size: int | None = None, retries: urllib3.Retry | None = None
    ) -> ApiClient:
        """Build a new ApiClient in memory (use it with `with`); the global config is untouched.

        Every call it makes has a timeout (`request_timeout`) unless the caller gives its own.

        Args:
            pool_size: Connections kept open to the server (default: the client's own).
            retries: urllib3's retry policy for every request (default: the client's own).

        Raises:
            ConfigError: The kubeconfig or the in-cluster service account cannot be loaded.
        """
        configuration = Configuration()
        if pool_size:
            configuration.connection_pool_maxsize = pool_size
        if retries is not None:
            configuration.retries = retries
        return self._client(configuration)

    def _client(self, configuration: Configuration) -> ApiClient:
        data = None if self.in_cluster else self._parsed()
        try:
            if data is None:
                kube_config.load_incluster_config(client_configuration=configuration)
                api = ApiClient(configuration)
            else:
                api = kube_config.new_client_from_config_dict(
                    config_dict=data,
                    context=_select(data, self.context)[0],
                    persist_config=False,
                    client_configuration=configuration,
                )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"cannot build a Kubernetes client from block {self._label()}: "
                f"{_redact(str(exc), data)}; fix the kubeconfig or in_cluster setting"
            ) from None
        api.rest_client = TimedRESTClient(api.configuration, self.request_timeout)
        return api

    def check(self, timeout: float = 10.0) -> str:
        """Call the version API of the cluster.

        Args:
            timeout: Seconds to wait for the API server.

        Returns:
            The server's gitVersion, e.g. "v1.31.0".

        Raises:
            TransientError: The server cannot be reached or answered 429/5xx.
            CredentialsError: The server refused the credentials (401/403).
            ConfigError: TLS failed or the server is not a Kubernetes API server.
        """
        server, where = self.server(), f"block {self._label()}"
        logger.debug("checking Kubernetes API server %s", server)
        configuration = Configuration()
        configuration.retries = 0  # fail fast: Prefect task retries handle transient faults
        with self._client(configuration) as client:
            try:
                response = VersionApi(client).get_code(
                    _preload_content=False, _request_timeout=timeout
                )
                return str(json.loads(response.data)["gitVersion"])
            except ApiException as exc:
                status = exc.status or 0
            except urllib3.exceptions.HTTPError as exc:
                reason = getattr(exc, "reason", None) or exc
                if not isinstance(reason, urllib3.exceptions.SSLError):
                    raise TransientError(
                        f"cannot reach Kubernetes API server {server}: {type(reason).__name__}"
                        " (is the cluster up?)"
                    ) from None
                status = 0
            except (ValueError, KeyError, TypeError):
                status = -1
        if status in (401, 403):
            raise CredentialsError(
                f"Kubernetes API server {server} refused the credentials (HTTP {status}): "
                f"check the user of the context in {where}"
            )
        if status == 429 or status >= 500:
            raise TransientError(f"Kubernetes API server {server} answered HTTP {status}")
        if status == 0:
            raise ConfigError(
                f"TLS with Kubernetes API server {server} failed: check certificate-authority-data "
                f"(or insecure-skip-tls-verify) of the cluster in {where}"
            )
        raise ConfigError(
            f"{server} did not answer /version like a Kubernetes API server (HTTP {status}): "
            f"check the server URL in {where}"
        )
