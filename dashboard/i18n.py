"""The one catalogue of visible strings: zh-CN (default) and en.

``t(key, lang)`` looks a string up; ``{name}`` placeholders are filled from
keyword arguments.  A key missing from a language is a bug that
``tests/dashboard/test_i18n.py`` catches (it also checks that every ``t("...")``
in the code names a key that exists, and that both languages use the same
placeholders).  At run time a missing key shows the key itself and logs once,
rather than breaking a screen in front of a command centre.

Names that are data (enterprises, inspectors, streets) are not here: streets
carry their own ``name_en``; people's and firms' names are shown as registered.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"

CATALOGUE: dict[str, dict[str, str]] = {
    # --- app and navigation ----------------------------------------------------------
    "app.name": {"zh-CN": "安监指挥一张图", "en": "Anjian Command Map"},
    "app.district": {"zh-CN": "龙华区应急管理局", "en": "Longhua District Emergency Management Bureau"},
    "nav.wall": {"zh-CN": "指挥大屏", "en": "Video wall"},
    "nav.dispatch": {"zh-CN": "调度台", "en": "Dispatch"},
    "nav.officer": {"zh-CN": "街道执法", "en": "Officer"},
    "nav.replay": {"zh-CN": "轨迹回放", "en": "Replay"},
    "lang.switch": {"zh-CN": "English", "en": "中文"},
    "lang.switch_title": {"zh-CN": "切换语言", "en": "Switch language"},
    "auth.logout": {"zh-CN": "退出", "en": "Log out"},
    "auth.forbidden_title": {"zh-CN": "无权访问", "en": "Not allowed"},
    "auth.forbidden_body": {"zh-CN": "您的角色（{role}）不能查看此页面。", "en": "Your role ({role}) may not view this page."},
    "auth.home": {"zh-CN": "返回首页", "en": "Back to your home page"},
    "page.not_found": {"zh-CN": "页面不存在", "en": "Page not found"},
    "role.wall": {"zh-CN": "大屏", "en": "wall"},
    "role.dispatcher": {"zh-CN": "调度员", "en": "dispatcher"},
    "role.officer": {"zh-CN": "街道执法员", "en": "officer"},
    "role.admin": {"zh-CN": "管理员", "en": "admin"},
    # --- login ------------------------------------------------------------------------
    "login.title": {"zh-CN": "登录", "en": "Log in"},
    "login.username": {"zh-CN": "用户名", "en": "Username"},
    "login.password": {"zh-CN": "密码", "en": "Password"},
    "login.submit": {"zh-CN": "登录", "en": "Log in"},
    "login.failed": {"zh-CN": "用户名或密码错误。", "en": "Wrong username or password."},
    "login.throttled": {"zh-CN": "登录失败次数过多，请 {minutes} 分钟后再试。",
                        "en": "Too many failed logins. Try again in {minutes} min."},
    "login.expired": {"zh-CN": "页面已过期，请重新登录。", "en": "The form expired. Please log in again."},
    "login.logged_out": {"zh-CN": "您已退出。", "en": "You have logged out."},
    # --- common words -----------------------------------------------------------------
    "common.none": {"zh-CN": "暂无", "en": "None"},
    "common.unknown": {"zh-CN": "未知", "en": "unknown"},
    "common.updated": {"zh-CN": "更新于 {time}", "en": "Updated {time}"},
    "common.live": {"zh-CN": "实时", "en": "Live"},
    "common.stale": {"zh-CN": "数据延迟", "en": "Data delayed"},
    "common.minutes_ago": {"zh-CN": "{n} 分钟前", "en": "{n} min ago"},
    "common.seconds_ago": {"zh-CN": "{n} 秒前", "en": "{n} s ago"},
    "common.hours_ago": {"zh-CN": "{n} 小时前", "en": "{n} h ago"},
    "common.km": {"zh-CN": "{n} 公里", "en": "{n} km"},
    "common.m": {"zh-CN": "{n} 米", "en": "{n} m"},
    "common.min": {"zh-CN": "{n} 分钟", "en": "{n} min"},
    "common.lel": {"zh-CN": "{n}% LEL", "en": "{n}% LEL"},
    "common.never": {"zh-CN": "从未", "en": "never"},
    "common.open_profile": {"zh-CN": "企业档案", "en": "Profile"},
    "common.more": {"zh-CN": "另有 {n} 条", "en": "{n} more"},
    "common.no_alert_store": {"zh-CN": "告警服务未接入", "en": "Alert service not connected"},
    "common.street": {"zh-CN": "街道", "en": "Street"},
    "common.grid": {"zh-CN": "网格", "en": "Grid"},
    # --- risk colours -----------------------------------------------------------------
    "risk.red": {"zh-CN": "红", "en": "Red"},
    "risk.orange": {"zh-CN": "橙", "en": "Orange"},
    "risk.yellow": {"zh-CN": "黄", "en": "Yellow"},
    "risk.blue": {"zh-CN": "蓝", "en": "Blue"},
    "risk.label": {"zh-CN": "风险等级", "en": "Risk level"},
    # --- inspector status -------------------------------------------------------------
    "status.on_duty": {"zh-CN": "在岗", "en": "On duty"},
    "status.visiting": {"zh-CN": "检查中", "en": "Inspecting"},
    "status.offline": {"zh-CN": "离线", "en": "Offline"},
    "status.on_task": {"zh-CN": "执行任务", "en": "On a task"},
    # --- sensor states ----------------------------------------------------------------
    "sensor.normal": {"zh-CN": "正常", "en": "Normal"},
    "sensor.low": {"zh-CN": "低报", "en": "Low alarm"},
    "sensor.high": {"zh-CN": "高报", "en": "High alarm"},
    "sensor.fault": {"zh-CN": "故障", "en": "Fault"},
    "sensor.tamper": {"zh-CN": "防拆报警", "en": "Tamper"},
    "sensor.test": {"zh-CN": "测试", "en": "Test"},
    "sensor.offline": {"zh-CN": "离线", "en": "Offline"},
    "sensor.unknown": {"zh-CN": "无数据", "en": "No data"},
    # --- alerts: types, severities, states, actions, outcomes ---------------------------
    "alert.type.gas_alarm": {"zh-CN": "燃气报警", "en": "Gas alarm"},
    "alert.type.sensor_fault": {"zh-CN": "探测器故障", "en": "Detector fault"},
    "alert.type.sensor_offline": {"zh-CN": "探测器离线", "en": "Detector offline"},
    "alert.type.inspector_offline": {"zh-CN": "执法人员离线", "en": "Inspector offline"},
    "alert.type.duplicate_visit": {"zh-CN": "重复检查", "en": "Duplicate inspection"},
    "alert.type.overlap_now": {"zh-CN": "多部门同时检查", "en": "Two units on site"},
    "alert.type.overdue_inspection": {"zh-CN": "检查逾期", "en": "Overdue inspections"},
    "alert.type.approach_warning": {"zh-CN": "即将重复检查", "en": "Approaching a visited site"},
    "alert.severity.critical": {"zh-CN": "紧急", "en": "Critical"},
    "alert.severity.warning": {"zh-CN": "警告", "en": "Warning"},
    "alert.severity.info": {"zh-CN": "提示", "en": "Info"},
    "alert.state.open": {"zh-CN": "待处理", "en": "Open"},
    "alert.state.acknowledged": {"zh-CN": "已确认", "en": "Acknowledged"},
    "alert.state.dispatched": {"zh-CN": "已派遣", "en": "Dispatched"},
    "alert.state.on_scene": {"zh-CN": "已到场", "en": "On scene"},
    "alert.state.resolved": {"zh-CN": "已处置", "en": "Resolved"},
    "alert.state.closed": {"zh-CN": "已关闭", "en": "Closed"},
    "alert.action.ack": {"zh-CN": "确认", "en": "Acknowledge"},
    "alert.action.assign": {"zh-CN": "派遣", "en": "Assign"},
    "alert.action.reassign": {"zh-CN": "改派", "en": "Reassign"},
    "alert.action.arrive": {"zh-CN": "已到场", "en": "Arrived"},
    "alert.action.resolve": {"zh-CN": "处置完成", "en": "Resolve"},
    "alert.action.close": {"zh-CN": "关闭", "en": "Close"},
    "alert.action.open": {"zh-CN": "报警", "en": "Raised"},
    "alert.action.escalate": {"zh-CN": "升级", "en": "Escalated"},
    "alert.action.takeover": {"zh-CN": "接管", "en": "Took over"},
    "alert.history.outcome": {"zh-CN": "结果：{outcome}", "en": "outcome: {outcome}"},
    "grid.numbered": {"zh-CN": "第{n}网格", "en": "Grid {n}"},
    "actor.system": {"zh-CN": "系统", "en": "system"},
    "actor.gps": {"zh-CN": "定位（{name}）", "en": "GPS ({name})"},
    "note.implied": {"zh-CN": "随“{action}”自动完成", "en": "done with “{action}”"},
    "note.offline.last_will": {"zh-CN": "设备断线（遗嘱消息）；最后上报 {time}",
                               "en": "connection lost (last will); last seen {time}"},
    "note.offline.silent": {"zh-CN": "设备无响应；最后上报 {time}", "en": "silent; last seen {time}"},
    "note.escalated": {"zh-CN": "升级至第 {n} 级（未确认）", "en": "escalated to level {n} (not acknowledged)"},
    "note.gas": {"zh-CN": "探测器：{level}", "en": "detector: {level}"},
    "note.gas_lel": {"zh-CN": "探测器：{level}，{lel}% LEL", "en": "detector: {level}, {lel} % LEL"},
    "note.overdue": {"zh-CN": "{n} 家企业检查逾期", "en": "{n} enterprises overdue"},
    "note.takeover": {"zh-CN": "从 {from_name} 接管给 {to_name}", "en": "taken over from {from_name} by {to_name}"},
    "note.reassign_to": {"zh-CN": "改派至 {name}", "en": "sent to {name} instead"},
    "alert.outcome.leak_handled": {"zh-CN": "泄漏已处置", "en": "Leak handled"},
    "alert.outcome.false_alarm": {"zh-CN": "误报", "en": "False alarm"},
    "alert.outcome.device_fault": {"zh-CN": "设备故障", "en": "Device fault"},
    "alert.outcome.repaired": {"zh-CN": "已维修", "en": "Repaired"},
    "alert.outcome.replaced": {"zh-CN": "已更换", "en": "Replaced"},
    "alert.outcome.no_fault_found": {"zh-CN": "未发现故障", "en": "No fault found"},
    "alert.outcome.back_online": {"zh-CN": "已恢复在线", "en": "Back online"},
    "alert.outcome.decommissioned": {"zh-CN": "已拆除", "en": "Decommissioned"},
    "alert.outcome.off_duty": {"zh-CN": "已下班", "en": "Off duty"},
    "alert.outcome.device_issue": {"zh-CN": "终端问题", "en": "Device issue"},
    "alert.outcome.scheduled": {"zh-CN": "已排期", "en": "Scheduled"},
    "alert.outcome.inspected": {"zh-CN": "已检查", "en": "Inspected"},
    "alert.outcome.dismissed": {"zh-CN": "忽略", "en": "Dismissed"},
    "alert.outcome.justified": {"zh-CN": "合理", "en": "Justified"},
    "alert.outcome.joint_inspection": {"zh-CN": "联合检查", "en": "Joint inspection"},
    "alert.outcome.reassigned": {"zh-CN": "已改派", "en": "Reassigned"},
    "alert.done": {"zh-CN": "已执行：{action}", "en": "Done: {action}"},
    "alert.conflict": {"zh-CN": "操作未执行：告警状态已变为“{state}”。", "en": "Not done: the alert is now “{state}”."},
    "alert.denied": {"zh-CN": "无权执行此操作。", "en": "You may not do this."},
    "alert.gone": {"zh-CN": "告警不存在。", "en": "No such alert."},
    "alert.failed": {"zh-CN": "操作失败：{reason}", "en": "Failed: {reason}"},
    "alert.count": {"zh-CN": "共 {n} 次", "en": "{n} times"},
    "alert.peak": {"zh-CN": "峰值 {n}% LEL", "en": "peak {n}% LEL"},
    "alert.escalated": {"zh-CN": "已升级 {n} 级", "en": "escalated ×{n}"},
    "alert.assignee": {"zh-CN": "处置人：{name}", "en": "Assigned to {name}"},
    # --- wall -------------------------------------------------------------------------
    "wall.title": {"zh-CN": "安全生产监管指挥大屏", "en": "Safety Supervision Command Wall"},
    "wall.kpi.on_duty": {"zh-CN": "在岗执法人员", "en": "Inspectors on duty"},
    "wall.kpi.visits_today": {"zh-CN": "今日检查", "en": "Inspections today"},
    "wall.kpi.duplicates_today": {"zh-CN": "今日拦截重复", "en": "Duplicates caught today"},
    "wall.kpi.open_gas": {"zh-CN": "未结燃气报警", "en": "Open gas alarms"},
    "wall.kpi.overdue": {"zh-CN": "逾期未检企业", "en": "Overdue enterprises"},
    "wall.kpi.coverage": {"zh-CN": "检查覆盖率", "en": "Inspection coverage"},
    "wall.heat.activity": {"zh-CN": "活动热力", "en": "Activity"},
    "wall.heat.gaps": {"zh-CN": "覆盖缺口", "en": "Coverage gaps"},
    "wall.heat.label": {"zh-CN": "热力图", "en": "Heat layer"},
    "wall.heat.window.1h": {"zh-CN": "近1小时", "en": "Last hour"},
    "wall.heat.window.today": {"zh-CN": "今日", "en": "Today"},
    "wall.heat.window.7d": {"zh-CN": "近7天", "en": "7 days"},
    "wall.ticker.empty": {"zh-CN": "当前无告警，系统运行正常", "en": "No alerts. All systems normal."},
    "wall.takeover.title": {"zh-CN": "紧急燃气报警", "en": "CRITICAL GAS ALARM"},
    "wall.takeover.since": {"zh-CN": "报警时间 {time}", "en": "Since {time}"},
    "wall.takeover.position": {"zh-CN": "第 {i} / {n} 条", "en": "{i} of {n}"},
    "wall.takeover.label": {"zh-CN": "紧急报警 {i}/{n}：{name}", "en": "Critical alarm {i}/{n}: {name}"},
    "wall.takeover.waiting": {"zh-CN": "等待调度确认", "en": "Waiting for a dispatcher"},
    "wall.units": {"zh-CN": "执法单位", "en": "Units"},
    "wall.tiles_offline": {"zh-CN": "地图瓦片服务不可达，已切换为离线底图", "en": "Tile server unreachable: offline base map"},
    "wall.legend.low": {"zh-CN": "低", "en": "low"},
    "wall.legend.high": {"zh-CN": "高", "en": "high"},
    "wall.legend.inspector": {"zh-CN": "执法人员（按单位颜色，灰色为离线）", "en": "Inspectors (unit colour; grey: offline)"},
    "wall.legend.alarm": {"zh-CN": "燃气报警", "en": "Gas alarm"},
    "wall.legend.enterprise": {"zh-CN": "企业（按风险）", "en": "Enterprises (by risk)"},
    "wall.cycle.district": {"zh-CN": "全区", "en": "Whole district"},
    "wall.view": {"zh-CN": "当前视图：{name}", "en": "Showing: {name}"},
    "wall.alerts": {"zh-CN": "实时告警", "en": "Live alerts"},
    # --- dispatch ---------------------------------------------------------------------
    "dispatch.title": {"zh-CN": "调度指挥台", "en": "Dispatcher console"},
    "dispatch.queue": {"zh-CN": "告警队列", "en": "Alert queue"},
    "dispatch.queue.empty": {"zh-CN": "没有待处理的告警", "en": "No open alerts"},
    "dispatch.detail.empty": {"zh-CN": "选择一条告警以处理", "en": "Select an alert to handle it"},
    "dispatch.nearest": {"zh-CN": "最近的可用人员", "en": "Nearest available inspectors"},
    "dispatch.nearest.empty": {"zh-CN": "附近没有可用人员", "en": "No inspector available nearby"},
    "dispatch.nearest.unavailable": {"zh-CN": "无法计算最近人员", "en": "Nearest inspectors unavailable"},
    "dispatch.send": {"zh-CN": "派 {name}", "en": "Send {name}"},
    "dispatch.eta": {"zh-CN": "约 {n} 分钟", "en": "~{n} min"},
    "dispatch.resolve_as": {"zh-CN": "处置结果", "en": "Resolve as"},
    "dispatch.duplicates": {"zh-CN": "重复 / 同时检查", "en": "Duplicates / overlaps"},
    "dispatch.duplicates.empty": {"zh-CN": "暂无重复检查", "en": "No duplicates"},
    "dispatch.reassign_one_click": {"zh-CN": "一键改派", "en": "Reassign"},
    "dispatch.inspectors": {"zh-CN": "执法人员", "en": "Inspectors"},
    "dispatch.inspectors.empty": {"zh-CN": "暂无在线人员", "en": "No inspectors reporting"},
    "dispatch.search": {"zh-CN": "企业查询", "en": "Find an enterprise"},
    "dispatch.search.placeholder": {"zh-CN": "企业名称或统一社会信用代码", "en": "Name or unified credit code"},
    "dispatch.search.empty": {"zh-CN": "没有找到企业", "en": "No enterprise found"},
    "dispatch.col.severity": {"zh-CN": "级别", "en": "Severity"},
    "dispatch.col.alert": {"zh-CN": "告警", "en": "Alert"},
    "dispatch.col.where": {"zh-CN": "位置", "en": "Where"},
    "dispatch.col.age": {"zh-CN": "时长", "en": "Age"},
    "dispatch.col.state": {"zh-CN": "状态", "en": "State"},
    "dispatch.col.actions": {"zh-CN": "操作", "en": "Actions"},
    "dispatch.col.name": {"zh-CN": "姓名", "en": "Name"},
    "dispatch.col.unit": {"zh-CN": "单位", "en": "Unit"},
    "dispatch.col.status": {"zh-CN": "状态", "en": "Status"},
    "dispatch.col.task": {"zh-CN": "当前任务", "en": "Current task"},
    "dispatch.col.last_fix": {"zh-CN": "最后定位", "en": "Last fix"},
    "dispatch.history": {"zh-CN": "处置记录", "en": "History"},
    "dispatch.alarm.banner": {"zh-CN": "{n} 条紧急报警待确认", "en": "{n} critical alarms not acknowledged"},
    "sound.enable": {"zh-CN": "启用报警声音", "en": "Enable alarm sound"},
    "sound.mute": {"zh-CN": "静音", "en": "Mute"},
    "sound.unmute": {"zh-CN": "取消静音", "en": "Unmute"},
    # --- officer ----------------------------------------------------------------------
    "officer.title": {"zh-CN": "我的网格报警", "en": "Alarms in my grids"},
    "officer.empty": {"zh-CN": "您的网格内没有未处理的燃气报警", "en": "No open gas alarms in your grids"},
    "officer.ack": {"zh-CN": "确认接警", "en": "Acknowledge"},
    "officer.on_my_way": {"zh-CN": "我已出发", "en": "On my way"},
    "officer.arrived": {"zh-CN": "已到现场", "en": "Arrived"},
    "officer.resolved": {"zh-CN": "处置完成：", "en": "Resolved:"},
    "officer.no_fix": {"zh-CN": "暂无您的定位，无法规划路线", "en": "No fix from your phone yet: no route"},
    "officer.distance": {"zh-CN": "直线距离 {d}", "en": "{d} as the crow flies"},
    "officer.assignee": {"zh-CN": "出发人员：{name}", "en": "On the way: {name}"},
    "officer.take_over": {"zh-CN": "接管（现由 {name} 处理）", "en": "Take over (now {name}'s)"},
    "officer.confirm_takeover": {"zh-CN": "此报警已派给 {other}。确定改由 {me} 接管吗？",
                                 "en": "This alarm is assigned to {other}. Take it over as {me}?"},
    "officer.confirm_resolve": {"zh-CN": "确定以“{outcome}”结束此报警吗？", "en": "Close this alarm as “{outcome}”?"},
    "officer.confirm": {"zh-CN": "确定", "en": "Confirm"},
    "officer.cancel": {"zh-CN": "取消", "en": "Cancel"},
    "officer.cannot_take": {"zh-CN": "账号未绑定执法终端，不能接警出发", "en": "This account has no inspector: it cannot take an alarm"},
    "officer.no_inspector": {"zh-CN": "账号未绑定执法终端", "en": "This account has no inspector device"},
    # --- enterprise profile -------------------------------------------------------------
    "enterprise.title": {"zh-CN": "企业一键全知道", "en": "Enterprise at a glance"},
    "enterprise.not_found": {"zh-CN": "没有这家企业", "en": "No such enterprise"},
    "enterprise.not_in_area": {"zh-CN": "您的辖区内没有这家企业（它可能不存在，或属于其他辖区）。",
                               "en": "There is no such enterprise in your area (it may not exist, or belong to another area)."},
    "enterprise.registered": {"zh-CN": "（登记数据）", "en": "(registered data)"},
    "enterprise.visits.none_since": {"zh-CN": "本系统暂无检查记录；上次检查 {date} 来自登记数据",
                                     "en": "No inspection recorded in this system; the last one, {date}, is from the registered data"},
    "enterprise.credit_code": {"zh-CN": "统一社会信用代码", "en": "Unified credit code"},
    "enterprise.address": {"zh-CN": "地址", "en": "Address"},
    "enterprise.industry": {"zh-CN": "行业", "en": "Industry"},
    "enterprise.area": {"zh-CN": "街道 / 网格", "en": "Street / grid"},
    "enterprise.last_inspection": {"zh-CN": "上次检查", "en": "Last inspection"},
    "enterprise.next_due": {"zh-CN": "下次应检", "en": "Next due"},
    "enterprise.overdue": {"zh-CN": "已逾期", "en": "Overdue"},
    "enterprise.sensors": {"zh-CN": "燃气探测器", "en": "Gas detectors"},
    "enterprise.sensors.empty": {"zh-CN": "未安装探测器", "en": "No detectors"},
    "enterprise.visits": {"zh-CN": "检查记录", "en": "Inspections"},
    "enterprise.visits.empty": {"zh-CN": "暂无检查记录", "en": "No inspections recorded"},
    "enterprise.alerts": {"zh-CN": "告警记录", "en": "Alerts"},
    "enterprise.alerts.empty": {"zh-CN": "暂无告警", "en": "No alerts"},
    "enterprise.col.sensor": {"zh-CN": "探测器", "en": "Detector"},
    "enterprise.col.state": {"zh-CN": "状态", "en": "State"},
    "enterprise.col.lel": {"zh-CN": "浓度", "en": "Level"},
    "enterprise.col.last": {"zh-CN": "最后上报", "en": "Last message"},
    "enterprise.col.when": {"zh-CN": "时间", "en": "When"},
    "enterprise.col.who": {"zh-CN": "执法人员", "en": "Inspector"},
    "enterprise.col.unit": {"zh-CN": "单位", "en": "Unit"},
    "enterprise.col.duration": {"zh-CN": "时长", "en": "Duration"},
    "enterprise.col.duplicate": {"zh-CN": "重复", "en": "Duplicate"},
    "enterprise.duplicate_of": {"zh-CN": "重复（见 #{id}）", "en": "repeat of #{id}"},
    "enterprise.col.type": {"zh-CN": "类型", "en": "Type"},
    "enterprise.col.state_alert": {"zh-CN": "状态", "en": "State"},
    # --- replay -----------------------------------------------------------------------
    "replay.title": {"zh-CN": "轨迹回放", "en": "Trail replay"},
    "replay.inspector": {"zh-CN": "执法人员", "en": "Inspector"},
    "replay.day": {"zh-CN": "日期", "en": "Day"},
    "replay.play": {"zh-CN": "播放", "en": "Play"},
    "replay.pause": {"zh-CN": "暂停", "en": "Pause"},
    "replay.speed": {"zh-CN": "倍速", "en": "Speed"},
    "replay.follow": {"zh-CN": "跟随", "en": "Follow"},
    "replay.empty": {"zh-CN": "当天没有轨迹", "en": "No track that day"},
    "replay.summary": {"zh-CN": "{n} 个定位点，{v} 次检查，{km} 公里", "en": "{n} fixes, {v} inspections, {km} km"},
    "replay.choose": {"zh-CN": "请选择执法人员", "en": "Choose an inspector"},
}

_warned: set[tuple[str, str]] = set()


def normalise_lang(lang: str | None) -> str:
    """'en', 'en-US', 'EN' -> 'en'; anything Chinese or unknown -> 'zh-CN'."""
    if lang and str(lang).lower().startswith("en"):
        return "en"
    return DEFAULT_LANG


def t(key: str, lang: str | None = DEFAULT_LANG, **fmt) -> str:
    lang = normalise_lang(lang)
    entry = CATALOGUE.get(key)
    text = None if entry is None else entry.get(lang)
    if text is None:
        if (key, lang) not in _warned:
            _warned.add((key, lang))
            log.error("i18n: no %s text for %r", lang, key)
        return key
    if fmt:
        try:
            return text.format(**fmt)
        except (KeyError, IndexError, ValueError):
            log.error("i18n: bad placeholders for %r (%s)", key, lang)
            return text
    return text


def has(key: str) -> bool:
    return key in CATALOGUE
