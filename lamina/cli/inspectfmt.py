"""``inspect -f`` the way docker/cli renders it: typed first, then the raw JSON strictly.

Docker's CLI decodes each inspected object into its Go type (``types.ImageInspect``,
``types.ContainerJSON``) and runs the template on that; only if that fails (a field the type
lacks, ``{{.Nope}}``) does it run the template again over the raw JSON as a map, with
``missingkey=error``. So a field the type has but the JSON omits prints its zero value
(``{{.Config.Healthcheck}}`` -> ``<nil>``, ``{{.Variant}}`` -> empty), a key neither has fails
with ``map has no entry for key "Nope"`` (exit 1), and keys only the JSON has (lamina's own,
``.Lamina``) still work through the second pass.

The schemas below are Docker 20.10's Go types (api/types), in field order. Structs lamina
does not model field by field (HostConfig, NetworkSettings, mounts) stay maps, as lenient as
before: a missing key there reads ``<no value>``.
"""

from __future__ import annotations

# A kind is "string", "bool", "int", "[]string", "list", "map" (map[string]T), "*T" (a pointer:
# a typed nil when the JSON has no value, else the JSON value as it is) or a nested struct
# (type, fields).
CONTAINER_CONFIG = ("*container.Config", [
    ("Hostname", "string"), ("Domainname", "string"), ("User", "string"), ("AttachStdin", "bool"),
    ("AttachStdout", "bool"), ("AttachStderr", "bool"), ("ExposedPorts", "map"), ("Tty", "bool"),
    ("OpenStdin", "bool"), ("StdinOnce", "bool"), ("Env", "[]string"), ("Cmd", "[]string"),
    ("Healthcheck", "*container.HealthConfig"), ("ArgsEscaped", "bool"), ("Image", "string"), ("Volumes", "map"),
    ("WorkingDir", "string"), ("Entrypoint", "[]string"), ("NetworkDisabled", "bool"),
    ("MacAddress", "string"), ("OnBuild", "[]string"), ("Labels", "map"), ("StopSignal", "string"),
    ("StopTimeout", "*int"), ("Shell", "[]string"),
])
GRAPH_DRIVER = ("types.GraphDriverData", [("Data", "map"), ("Name", "string")])
IMAGE = ("types.ImageInspect", [
    ("Id", "string"), ("RepoTags", "[]string"), ("RepoDigests", "[]string"), ("Parent", "string"),
    ("Comment", "string"), ("Created", "string"), ("Container", "string"),
    ("ContainerConfig", CONTAINER_CONFIG), ("DockerVersion", "string"), ("Author", "string"),
    ("Config", CONTAINER_CONFIG), ("Architecture", "string"), ("Variant", "string"), ("Os", "string"),
    ("OsVersion", "string"), ("Size", "int"), ("VirtualSize", "int"), ("GraphDriver", GRAPH_DRIVER),
    ("RootFS", ("types.RootFS", [("Type", "string"), ("Layers", "[]string"), ("BaseLayer", "string")])),
    ("Metadata", ("types.ImageMetadata", [("LastTagTime", "string")])),
])
CONTAINER_STATE = ("*types.ContainerState", [
    ("Status", "string"), ("Running", "bool"), ("Paused", "bool"), ("Restarting", "bool"),
    ("OOMKilled", "bool"), ("Dead", "bool"), ("Pid", "int"), ("ExitCode", "int"), ("Error", "string"),
    ("StartedAt", "string"), ("FinishedAt", "string"), ("Health", "*types.Health"),
])
CONTAINER = ("types.ContainerJSON", [
    ("Id", "string"), ("Created", "string"), ("Path", "string"), ("Args", "[]string"),
    ("State", CONTAINER_STATE), ("Image", "string"), ("ResolvConfPath", "string"),
    ("HostnamePath", "string"), ("HostsPath", "string"), ("LogPath", "string"), ("Node", "*types.ContainerNode"),
    ("Name", "string"), ("RestartCount", "int"), ("Driver", "string"), ("Platform", "string"),
    ("MountLabel", "string"), ("ProcessLabel", "string"), ("AppArmorProfile", "string"),
    ("ExecIDs", "[]string"), ("HostConfig", "*container.HostConfig"), ("GraphDriver", GRAPH_DRIVER),
    ("SizeRw", "*int64"), ("SizeRootFs", "*int64"), ("Mounts", "list"), ("Config", CONTAINER_CONFIG),
    ("NetworkSettings", "*types.NetworkSettings"),
])
_ZERO = {"string": "", "bool": False, "int": 0}


def typed(kind, raw):
    """The value Go's json.Unmarshal gives a field of ``kind`` for the JSON value ``raw``
    (GoStructs for structs, typed nils for absent slices and maps)."""
    from lamina.gotemplate.values import NIL_MAP, NIL_SLICE, GoStruct, NilPointer
    if isinstance(kind, tuple):
        type_name, fields = kind
        if raw is None:
            return None if type_name.startswith("*") else typed(kind, {})
        if not isinstance(raw, dict):
            return raw
        return GoStruct([(name, typed(k, raw.get(name))) for name, k in fields], type_name=type_name)
    if kind == "[]string":
        return NIL_SLICE if raw is None else raw
    if kind == "list":
        return NIL_SLICE if raw is None else raw
    if kind == "map":
        if raw is None:
            return NIL_MAP
        if not isinstance(raw, dict):
            return raw
        # map[string]struct{} (ExposedPorts, Volumes) holds empty structs
        return {k: GoStruct(type_name="struct {}") if v == {} else v for k, v in raw.items()}
    if kind.startswith("*"):
        return NilPointer(kind) if raw is None else raw
    return _ZERO[kind] if raw is None else raw


def render(template_text: str, raw: dict, *, kind: str) -> str:
    """One inspected object (``kind`` "image" or "container") through ``template_text``,
    as docker/cli's TemplateInspector does. Raises TemplateError with the raw pass's message
    when both passes fail."""
    from lamina.gotemplate.template import TemplateError, compile_template
    tmpl = compile_template(template_text)
    schema = IMAGE if kind == "image" else CONTAINER
    try:
        return tmpl.render(typed(schema, raw))
    except TemplateError:
        pass
    return tmpl.render(raw, missingkey="error")
