"""The Debugger page's rule actions: deploy the EventBridge rule and the action function; fired-rule history."""

from __future__ import annotations

import streamlit as st

from app_pages._shared import show_error
from core.debugger import DebugStore, RuleResult, RuleStatus
from core.rule_actions import ActionsSpec, DeployedActions, RuleActions
from core.rule_actions.history import fired_rules_table
from core.rule_actions.policies import explain


def show_fired_rules(actions: RuleActions, store: DebugStore, job_name: str, rules: list[RuleResult]) -> None:
    """Each fired rule of the job (``rules``: its rules, as the page read them): when, the event sent,
    the action taken and its outcome."""
    events = store.events(job_name)
    if not events and not any(r.status is RuleStatus.ISSUES_FOUND for r in rules):
        return
    try:
        # the function ran after the first event was sent (a minute's margin for clocks apart)
        records = actions.history(job_name, since=min(e.sent_at for e in events) - 60) if events else []
    except Exception as exc:
        show_error(exc)
        records = []
    st.markdown("**Fired rules and their actions**")
    table = fired_rules_table(rules, events, records)
    st.dataframe(table, hide_index=True, key=f"fired_rules_{job_name}", width="stretch")
    st.markdown("\n".join(f"- {row['rule']} (step {row['fired at step']}): {row['action']} → **{row['outcome']}**"
                           for row in table.to_dict("records")))
    for event in events:
        if event.event_id:
            with st.expander(f"Event {event.event_id} ({event.rule})"):
                st.json(dict(event.entry))


def show_rule_actions(actions: RuleActions) -> None:
    """Deploy, update or remove the actions, with their least-privilege policy statement by statement."""
    try:
        deployed = actions.describe()
    except Exception as exc:
        show_error(exc)
        return
    notice = st.session_state.pop("rule_actions_notice", None)
    title = "Rule actions: deployed" if deployed else "Rule actions: not deployed"
    with st.expander(title, icon=":material/bolt:", expanded=deployed is None or notice is not None):
        if notice:
            st.success(notice)
        st.caption("A fired rule puts a *Debugger Rule Fired* event on EventBridge; a rule there invokes an action "
                   "function that stops the training job (rules with StopTraining) and notifies an SNS topic, even "
                   "when this console is closed. Jobs started after deploying send their fired rules there. "
                   + actions.runs_where)
        current = deployed.spec if deployed else ActionsSpec()
        with st.form("rule_actions_form"):
            c1, c2 = st.columns(2)
            prefix = c1.text_input("Training jobs whose names start with", value=current.job_prefix,
                                   key="rule_actions_prefix",
                                   help="Empty: every job. Also the policy's resource: training-job/<prefix>*")
            stop = c1.checkbox("Stop the job (rules with StopTraining)", value=current.stop_training,
                               key="rule_actions_stop")
            allow = c1.checkbox("Grant sagemaker:StopTrainingJob", value=current.allow_stop, key="rule_actions_allow",
                                help="Off deploys the role without it: the function's stop is denied, and shown so")
            topic = c2.text_input("Notify SNS topic", value=current.topic_name or "", placeholder="(none)",
                                  key="rule_actions_topic")
            email = c2.text_input("E-mail subscribed to the topic", value=current.email or "", placeholder="(none)",
                                  key="rule_actions_email",
                                  help="AWS sends a confirmation mail first; locally messages stay in the workspace")
            deploy = st.form_submit_button("Deploy rule actions", type="primary")
        if deploy:
            try:
                spec = ActionsSpec(job_prefix=prefix.strip(), stop_training=stop, allow_stop=allow,
                                   topic_name=topic.strip() or None, email=email.strip() or None)
                with st.spinner("Deploying the role, the function and the EventBridge rule..."):
                    deployed = actions.deploy(spec)
            except Exception as exc:
                show_error(exc)
            else:
                st.session_state["rule_actions_notice"] = f"Rule actions deployed: {deployed.function_arn}"
                st.rerun()
        if deployed is not None:
            _details(deployed)
            if st.button("Remove rule actions", key="rule_actions_remove"):
                try:
                    actions.remove()
                    st.rerun()
                except Exception as exc:
                    show_error(exc)


def _details(deployed: DeployedActions) -> None:
    st.caption(f"EventBridge rule `{deployed.rule_arn}` on the `{deployed.bus}` bus → function "
               f"`{deployed.function_arn}`" + (f" → topic `{deployed.topic_arn}`" if deployed.topic_arn else ""))
    c1, c2 = st.columns([3, 2])
    with c1:
        st.markdown(f"Inline policy of role `{deployed.role_arn}`")
        st.json(dict(deployed.policy))
        st.markdown("Event pattern")
        st.json(dict(deployed.event_pattern), expanded=False)
    with c2:
        for sid, reason in explain(deployed.policy, deployed.spec):
            st.markdown(f"**{sid}**: {reason}")
        st.markdown("**Trust policy**: only the Lambda service (`lambda.amazonaws.com`) may assume the role.")
    if deployed.job_statement:
        st.markdown("Jobs evaluate their rules themselves and put the events: their SageMaker execution role needs "
                    "this statement (an EC2 spot run's instance role gets it at launch).")
        st.json(dict(deployed.job_statement))
