"""Lambda: the function that calls an endpoint, its least-privilege policy, a test event, and a denied call."""

from __future__ import annotations

import json

import streamlit as st

from app_pages._shared import ENDPOINT_QUERY_PARAM, backend, rerun_after_change, show_error, take_linked_choice
from core.endpoints import EndpointStatus
from core.job_environment import waiting_notice
from core.lambdas import FunctionInfo, FunctionInvocation, FunctionManager, FunctionSpec, explain
from core.lambdas.events import image_event, parse_event
from core.lambdas.iam import evaluate
from core.lambdas.policies import endpoint_arn

EMPTY_EVENT = json.dumps({"image": "", "top_k": 5}, indent=2)
FORMATS = {"direct": "Direct invocation", "api_gateway": "API Gateway proxy (JSON body)"}


st.title("Lambda")
be = backend()
functions: FunctionManager = be.functions
st.caption("A Lambda function (`lambda/lambda_function.py`) that takes an image in JSON, calls a SageMaker endpoint "
           f"and returns its top-k. {functions.runs_where}")
serving = [e.name for e in be.endpoints.list_endpoints() if e.status is EndpointStatus.IN_SERVICE]
deployed = functions.list_functions()


def _deploy_form() -> None:
    if not serving:
        st.info("No endpoint is InService: deploy a model first.")
        st.page_link("app_pages/deploy.py", label="Go to Deploy", icon=":material/rocket_launch:")
        return
    take_linked_choice(ENDPOINT_QUERY_PARAM, serving, "lambda_endpoint")
    endpoint = st.selectbox("Endpoint the function calls", serving, key="lambda_endpoint")
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Function name (empty: generated)", key="lambda_name", max_chars=64,
                         placeholder=f"classify-{endpoint}"[:64])
    timeout = c2.number_input("Timeout (s)", 1, 900, 30, key="lambda_timeout")
    memory = c3.number_input("Memory (MB)", 128, 10240, 256, step=64, key="lambda_memory")
    c1, c2 = st.columns(2)
    reserve = c1.checkbox("Reserve concurrency", key="lambda_reserve",
                          help="At most this many invocations run at once; more are throttled (0 stops every call)")
    reserved = c2.number_input("Reserved concurrency", 0, 1000, 5, key="lambda_reserved", disabled=not reserve)
    if functions.default_s3_prefix is None:
        st.caption("S3 inputs need the aws backend (the local store is not S3).")
        s3_prefix = None
    else:
        s3_prefix = st.text_input("S3 input prefix (empty: S3 inputs off)", key="lambda_s3_prefix",
                                  placeholder=functions.default_s3_prefix) or None
    if st.button("Deploy function", type="primary", key="lambda_deploy"):
        try:
            spec = FunctionSpec(function_name=name.strip() or f"classify-{endpoint}"[:64], endpoint_name=endpoint,
                                s3_input_prefix=s3_prefix, reserved_concurrency=int(reserved) if reserve else None,
                                timeout_s=int(timeout), memory_mb=int(memory))
            with st.spinner(f"Deploying {spec.function_name}…"):
                info = functions.deploy(spec)
        except Exception as exc:
            show_error(exc)
            return
        st.session_state["lambda_function"] = info.name
        st.session_state["lambda_message"] = f"Deployed {info.name} ({functions.location(info)})"
        rerun_after_change()


with st.expander("Deploy a function", expanded=not deployed or ENDPOINT_QUERY_PARAM in st.query_params):
    _deploy_form()
message = st.session_state.pop("lambda_message", None)
if message:
    st.success(message)
if not deployed:
    st.info("No function yet: deploy one above.")
    st.stop()

by_name = {f.name: f for f in deployed}
if st.session_state.get("lambda_function") not in by_name:
    st.session_state["lambda_function"] = deployed[0].name
function = by_name[st.selectbox("Function", list(by_name), key="lambda_function")]


def _policy_panel(info: FunctionInfo) -> FunctionInfo:
    st.subheader("Least-privilege policy")
    allowed = st.toggle("Allow `sagemaker:InvokeEndpoint` on the endpoint", value=info.allows_invoke,
                        key=f"lambda_allow_{info.name}",
                        help="Off removes the statement from the role's policy: the next call is denied")
    if allowed != info.allows_invoke:
        try:
            info = functions.set_invoke_permission(info.name, allowed)
        except Exception as exc:
            show_error(exc)
    resource = endpoint_arn(info.region, info.account, info.spec.endpoint_name)
    outcome = evaluate([info.policy], "sagemaker:InvokeEndpoint", resource)
    verdict = "allowed" if outcome.is_allowed else f"denied ({outcome.decision.value})"
    (st.success if outcome.is_allowed else st.warning)(
        f"`sagemaker:InvokeEndpoint` on `{resource}`: **{verdict}** by this policy")
    c1, c2 = st.columns([3, 2])
    with c1:
        st.markdown(f"Inline policy of role `{info.role_arn}`")
        st.json(dict(info.policy))
    with c2:
        for sid, reason in explain(dict(info.policy)):
            st.markdown(f"**{sid}**: {reason}")
        st.markdown("**Trust policy**: only the Lambda service (`lambda.amazonaws.com`) may assume the role.")
        st.json(dict(info.trust_policy), expanded=False)
    if functions.policy_note:
        st.caption(functions.policy_note)
    return info


def _details(info: FunctionInfo) -> None:
    spec = info.spec
    concurrency = "unreserved" if spec.reserved_concurrency is None else str(spec.reserved_concurrency)
    st.caption(f"`{info.arn}` · endpoint `{spec.endpoint_name}` · timeout {spec.timeout_s} s · {spec.memory_mb} MB · "
               f"reserved concurrency {concurrency} · code {info.code_size:,} bytes, SHA-256 `{info.code_sha256}`")


def _event_editor() -> str:
    st.subheader("Test event")
    c1, c2 = st.columns([2, 1])
    upload = c1.file_uploader("Pick an image: it fills the event's base64", type=["jpg", "jpeg", "png", "gif",
                              "bmp", "webp"], key="lambda_image")
    event_format = c2.radio("Event format", list(FORMATS), format_func=FORMATS.__getitem__, key="lambda_format")
    top_k = c2.number_input("top_k", 1, 100, 5, key="lambda_top_k")
    source = (upload.file_id, event_format, int(top_k)) if upload is not None else None
    if source is not None and st.session_state.get("lambda_event_source") != source:
        event = image_event(upload.getvalue(), top_k=int(top_k), api_gateway=event_format == "api_gateway")
        st.session_state["lambda_event"] = json.dumps(event, indent=2)
        st.session_state["lambda_event_source"] = source
    st.session_state.setdefault("lambda_event", EMPTY_EVENT)
    return st.text_area("Event (JSON): image as base64, or s3_uri, or url", key="lambda_event", height=180)


def _show(result: FunctionInvocation) -> None:
    c1, c2, c3, c4 = st.columns(4)
    status = str(result.status_code) if result.status_code is not None else (
        "throttled" if result.throttled else result.function_error or "error")
    c1.metric("Status", status)
    if result.top_1:
        c2.metric("Top-1", result.top_1[0], f"{result.top_1[1]:.1%}", delta_color="off", delta_arrow="off")
    c3.metric("Latency", f"{result.latency_ms:.0f} ms", help=f"Round trip seen by the console{functions.latency_note}")
    if result.duration_ms is not None:
        c4.metric("Duration", f"{result.duration_ms:.0f} ms", help="Time in the handler (Lambda's REPORT line)")
    body = result.body if isinstance(result.body, dict) else {}
    if result.status_code == 403:
        st.error(f"403 {body.get('error', 'AccessDenied')}: {body.get('message', '')}", icon=":material/block:")
    elif result.status_code is not None and result.status_code >= 400:
        st.error(f"{result.status_code} {body.get('error', '')}: {body.get('message', '')}")
    elif result.throttled:
        st.warning("Throttled: every reserved-concurrency slot is busy (TooManyRequestsException).")
    elif result.function_error:
        st.error(f"The function failed ({result.function_error}): {body.get('errorMessage', result.body)}")
    st.markdown("Response body")
    st.json(result.body if isinstance(result.body, (dict, list)) else {"payload": result.body})
    st.markdown("Log of this invocation")
    st.code("\n".join(result.log_lines) or "(no log lines)", language="text")


_details(function)
function = _policy_panel(function)
event_text = _event_editor()
waiting = waiting_notice(functions)  # the local runtime is the job environment's Python
if waiting:
    st.caption(waiting)
c1, c2 = st.columns([1, 5])
if c1.button("Invoke", type="primary", key="lambda_invoke", disabled=bool(waiting)):
    try:
        with st.spinner(f"Invoking {function.name}…"):
            st.session_state["lambda_result"] = (function.name, functions.invoke(function.name, parse_event(event_text)))
    except Exception as exc:
        show_error(exc)
last = st.session_state.get("lambda_result")
if last and last[0] == function.name:
    _show(last[1])
with st.expander("Recent log lines"):
    try:
        st.code("\n".join(functions.recent_log_lines(function.name)) or "(none yet)", language="text")
    except Exception as exc:
        show_error(exc)
if c2.button("Delete function", key="lambda_delete"):
    try:
        functions.delete(function.name)
    except Exception as exc:
        show_error(exc)
    else:
        st.session_state.pop("lambda_result", None)
        st.session_state["lambda_message"] = f"Deleted {function.name}"
        rerun_after_change()
