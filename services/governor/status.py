"""The governor's ``status`` document: what it read, what it decided and why."""

from __future__ import annotations

from typing import Any

from titanium.services.governor.core import Governor


def camera_status(gov: Governor, camera: str) -> dict[str, Any]:
    d = gov.decision
    cs = gov.state.cameras.get(camera)
    doc: dict[str, Any] = {
        "priority": next(c.priority for c in gov.cameras if c.id == camera),
        "mode": "manual" if cs is not None and cs.manual_best is not None else "auto",
        "manual_pause": bool(cs and cs.manual_pause),
        "online": gov.online.get(camera),
        "capture_paused": gov.capture_paused.get(camera),
        "viewers": gov.viewers_of(camera),
        "ladder": gov.ladders[camera].labels,
    }
    if d is not None:
        cd = d.cameras[camera]
        doc.update(cd.rung.describe(), reason=cd.reason, limits=list(cd.limits))
    return doc


def status_document(gov: Governor, moonraker: dict[str, Any] | None) -> dict[str, Any]:
    b = gov.board
    r = b.readings
    d = gov.decision
    return {
        "protection": gov.protect,
        "printer": gov.printer.describe(),
        "readings": {
            "cpu": r.cpu,
            "cpu_short": r.cpu_short,
            "per_cpu": list(b.per_cpu),
            "load": list(b.load) if b.load else None,
            "memory": {
                "total_mb": b.mem_total_mb,
                "available_mb": r.mem_available_mb,
                "titanium_pss_mb": r.titanium_pss_mb,
            },
            "temperature": {"celsius": r.temp_c, "sensor": r.temp_sensor, "sensors": b.temps},
            "throttled": None
            if b.throttled is None
            else {
                "value": hex(b.throttled.value),
                "now": list(b.throttled.now),
                "since_boot": list(b.throttled.since_boot),
                "text": b.throttled.describe(),
            },
            "processes": b.processes,
        },
        "conditions": list(d.conditions) if d else [],
        "cameras": {c.id: camera_status(gov, c.id) for c in gov.cameras},
        "admission": None
        if d is None
        else {"min_priority": d.admission, "reason": d.admission_reason},
        "actuation": gov.actuator.results if gov.protect else "off: print protection is off",
        "moonraker": moonraker,
        "thresholds": {
            "cpu_high": gov.g.cpu_high,
            "cpu_low": gov.g.cpu_low,
            "temp_limit": gov.g.temp_limit,
            "temp_resume": gov.g.temp_resume,
            "calm_time": gov.g.calm_time,
            "sample_interval": gov.g.sample_interval,
            "cpu_interval": gov.g.cpu_interval,
            "step_down_after": gov.g.step_down_after,
        },
    }
