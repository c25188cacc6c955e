"""``inspect -f`` the way docker/cli renders it: typed first, then the raw JSON strictly.

Docker's CLI decodes each inspected object into its Go type (``image.InspectResponse``,
``container.InspectResponse``: the Debian build of the 20.10 CLI vendors the newer moby API
types, and the schemas follow what that client prints) and runs the template on that; only
if that fails (a field the type lacks, ``{{.Nope}}``) does it run the template again over
the raw JSON as a map, with ``missingkey=error``. So a field the type has but the JSON omits
prints its zero value (``{{.Config.Healthcheck}}`` -> ``<nil>``, ``{{.Variant}}`` -> empty),
a key neither has fails with ``map has no entry for key "Nope"`` (exit 1), and keys only the
JSON has (lamina's own, ``.Lamina``, ``.State.MonitorPid``) still work through the second pass.

The schemas below are those Go types, in field order, with their omitempty JSON tags
(``{{json .Config}}`` leaves out what Docker leaves out). Structs lamina does not model field
by field (HostConfig, NetworkSettings, mounts) stay maps, as lenient as before: a missing key
there reads ``<no value>``.
"""

from __future__ import annotations

# A kind is "string", "bool", "int", "[]string", "list", "map" (map[string]T), "*T" (a pointer:
# a typed nil when the JSON has no value, else the JSON value as it is), a nested struct
# (type, fields) or a slice of structs ("[]T", fields). A field is (name, kind) or
# (name, kind, OMIT): Go's `json:",omitempty"` (left out of {{json}} when empty).
OMIT = "omitempty"
CONTAINER_CONFIG = ("*container.Config", [
    ("Hostname", "string"), ("Domainname", "string"), ("User", "string"), ("AttachStdin", "bool"),
    ("AttachStdout", "bool"), ("AttachStderr", "bool"), ("ExposedPorts", "map", OMIT), ("Tty", "bool"),
    ("OpenStdin", "bool"), ("StdinOnce", "bool"), ("Env", "[]string"), ("Cmd", "[]string"),
    ("Healthcheck", "*container.HealthConfig", OMIT), ("ArgsEscaped", "bool", OMIT), ("Image", "string"),
    ("Volumes", "map"), ("WorkingDir", "string"), ("Entrypoint", "[]string"), ("NetworkDisabled", "bool", OMIT),
    ("MacAddress", "string", OMIT), ("OnBuild", "[]string"), ("Labels", "map"), ("StopSignal", "string", OMIT),
    ("StopTimeout", "*int", OMIT), ("Shell", "[]string", OMIT),
])
# An image's Config as the docker CLI on this machine types it (Debian's build vendors the
# newer moby API: dockerspec.DockerOCIImageConfig, the OCI image config fields, every one
# omitempty, then Docker's extensions): `{{json .Config}}` of an image without a config is {}.
IMAGE_CONFIG = ("*dockerspec.DockerOCIImageConfig", [
    ("User", "string", OMIT), ("ExposedPorts", "map", OMIT), ("Env", "[]string", OMIT),
    ("Entrypoint", "[]string", OMIT), ("Cmd", "[]string", OMIT), ("Volumes", "map", OMIT),
    ("WorkingDir", "string", OMIT), ("Labels", "map", OMIT), ("StopSignal", "string", OMIT),
    ("ArgsEscaped", "bool", OMIT), ("Healthcheck", "*container.HealthConfig", OMIT),
    ("OnBuild", "[]string", OMIT), ("Shell", "[]string", OMIT),
])
GRAPH_DRIVER = ("types.GraphDriverData", [("Data", "map"), ("Name", "string")])
IMAGE = ("image.InspectResponse", [
    ("Id", "string"), ("RepoTags", "[]string"), ("RepoDigests", "[]string"), ("Parent", "string"),
    ("Comment", "string"), ("Created", "string", OMIT), ("Container", "string", OMIT),
    ("ContainerConfig", CONTAINER_CONFIG, OMIT), ("DockerVersion", "string"), ("Author", "string"),
    ("Config", IMAGE_CONFIG), ("Architecture", "string"), ("Variant", "string", OMIT), ("Os", "string"),
    ("OsVersion", "string", OMIT), ("Size", "int"), ("VirtualSize", "int", OMIT), ("GraphDriver", GRAPH_DRIVER),
    ("RootFS", ("image.RootFS", [("Type", "string"), ("Layers", "[]string", OMIT)])),
    ("Metadata", ("image.Metadata", [("LastTagTime", "string")])),
    ("Descriptor", "*ocispec.Descriptor", OMIT), ("Manifests", "list", OMIT),
])
HEALTH = ("*types.Health", [
    ("Status", "string"), ("FailingStreak", "int"),
    ("Log", ("[]*types.HealthcheckResult", [("Start", "string"), ("End", "string"), ("ExitCode", "int"),
                                            ("Output", "string")])),
])
CONTAINER_STATE = ("*types.ContainerState", [
    ("Status", "string"), ("Running", "bool"), ("Paused", "bool"), ("Restarting", "bool"),
    ("OOMKilled", "bool"), ("Dead", "bool"), ("Pid", "int"), ("ExitCode", "int"), ("Error", "string"),
    ("StartedAt", "string"), ("FinishedAt", "string"), ("Health", HEALTH, OMIT),
])
CONTAINER = ("container.InspectResponse", [
    ("Id", "string"), ("Created", "string"), ("Path", "string"), ("Args", "[]string"),
    ("State", CONTAINER_STATE), ("Image", "string"), ("ResolvConfPath", "string"),
    ("HostnamePath", "string"), ("HostsPath", "string"), ("LogPath", "string"), ("Name", "string"),
    ("RestartCount", "int"), ("Driver", "string"),
    ("Platform", "string"), ("MountLabel", "string"), ("ProcessLabel", "string"), ("AppArmorProfile", "string"),
    ("ExecIDs", "[]string"), ("HostConfig", "*container.HostConfig"), ("GraphDriver", GRAPH_DRIVER),
    ("SizeRw", "*int64", OMIT), ("SizeRootFs", "*int64", OMIT), ("Mounts", "list"), ("Config", CONTAINER_CONFIG),
    ("NetworkSettings", "*types.NetworkSettings"), ("ImageManifestDescriptor", "*ocispec.Descriptor", OMIT),
])
# HostConfig stays a map (its ~70 fields are not modelled one by one), but the fields Go types
# as slices and maps read as Docker's client shows them when the record has no value: a nil
# slice prints [] (JSON null), a nil map map[] (JSON null); some are never nil in dockerd's
# answer ([] or [0 0]).
HOST_CONFIG_NIL = {
    **dict.fromkeys(("Binds", "Links", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "CapAdd",
                     "CapDrop", "SecurityOpt", "VolumesFrom", "Mounts", "DeviceRequests", "DeviceCgroupRules",
                     "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                     "BlkioDeviceWriteIOps"), "[]"),
    **dict.fromkeys(("Tmpfs", "Sysctls", "StorageOpt"), "map"),
}
HOST_CONFIG_ZERO = {"Ulimits": [], "BlkioWeightDevice": [], "ConsoleSize": [0, 0]}
_ZERO = {"string": "", "bool": False, "int": 0}


def typed(kind, raw):
    """The value Go's json.Unmarshal gives a field of ``kind`` for the JSON value ``raw``
    (GoStructs for structs, typed nils for absent slices and maps)."""
    from lamina.gotemplate.values import NIL_MAP, NIL_SLICE, GoStruct, NilPointer
    if isinstance(kind, tuple):
        type_name, fields = kind
        if type_name.startswith("[]"):  # a slice of structs
            if raw is None:
                return NIL_SLICE
            if not isinstance(raw, list):
                return raw
            return [typed((type_name[2:], fields), item) for item in raw]
        if raw is None:
            return NilPointer(type_name) if type_name.startswith("*") else typed(kind, {})
        if not isinstance(raw, dict):
            return raw
        omit = {f[0]: (f[0], True) for f in fields if len(f) > 2}
        return GoStruct([(f[0], typed(f[1], raw.get(f[0]))) for f in fields], type_name=type_name,
                        json_keys=omit or None)
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
    if kind == "*container.HostConfig" and isinstance(raw, dict):
        out = dict(raw)
        for name, k in HOST_CONFIG_NIL.items():
            if out.get(name) is None:
                out[name] = NIL_SLICE if k == "[]" else NIL_MAP
        for name, zero in HOST_CONFIG_ZERO.items():
            if out.get(name) is None:
                out[name] = list(zero)
        return out
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
