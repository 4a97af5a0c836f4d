"""JSON Schemas of what PagerDuty, Microsoft Teams, Slack and Alertmanager accept, for the
recording receivers that stand in for those services in tests.

Transcribed from the services' documentation, not from our code (so a payload that drifts
from the documented shape fails here):

* PagerDuty Events API v2, "Send an Alert Event" and "Send a Change Event"
  (developer.pagerduty.com/api-reference): ``routing_key`` and ``event_action``
  (trigger, acknowledge, resolve) required; ``dedup_key`` at most 255 characters; a
  trigger needs ``payload.summary`` (at most 1024), ``payload.source`` and
  ``payload.severity`` (critical, error, warning, info); ``timestamp`` ISO 8601; ``links``
  of ``{href, text}``. A change event needs ``routing_key`` and ``payload.summary`` (at
  most 1024) (``source``, ``timestamp`` and ``custom_details`` optional).
* Microsoft Teams incoming webhook / Workflows: ``{"type": "message", "attachments":
  [{"contentType": "application/vnd.microsoft.card.adaptive", "content": <card>}]}``;
  an Adaptive Card (adaptivecards.io, schema 1.4): ``type: AdaptiveCard``, ``version``,
  ``body`` of elements each with a ``type``; TextBlock needs ``text``, FactSet needs
  ``facts`` of ``{title, value}``; Action.OpenUrl needs ``url``.
* Slack incoming webhooks with Block Kit: ``text`` and/or ``blocks``; a header's text is
  plain_text of at most 150 characters; a section's text at most 3000; fields at most 10,
  each at most 2000.
* Alertmanager API v2 ``postableAlerts``: a list of ``{labels (required), annotations,
  startsAt, endsAt, generatorURL}``.
"""

from __future__ import annotations

from typing import Any

import jsonschema

ISO_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
_LINKS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["href"],
        "properties": {
            "href": {"type": "string", "pattern": "^https?://"},
            "text": {"type": "string"},
        },
    },
}

PAGERDUTY_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "pattern": ISO_TIME},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "images": {"type": "array"},
        "links": _LINKS,
        "client": {"type": "string"},
        "client_url": {"type": "string", "pattern": "^https?://"},
    },
    "allOf": [
        {
            "if": {"properties": {"event_action": {"const": "trigger"}}},
            "then": {"required": ["payload"]},
        },
        {
            "if": {"properties": {"event_action": {"enum": ["acknowledge", "resolve"]}}},
            "then": {"required": ["dedup_key"]},
        },
    ],
}

PAGERDUTY_CHANGE: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "payload"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "payload": {
            "type": "object",
            "required": ["summary"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string"},
                "timestamp": {"type": "string", "pattern": ISO_TIME},
                "custom_details": {"type": "object"},
            },
        },
        "links": _LINKS,
    },
}

_CARD_ELEMENT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["TextBlock", "FactSet", "ColumnSet", "Container", "Image"]}},
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "TextBlock"}}},
            "then": {
                "required": ["text"],
                "properties": {
                    "text": {"type": "string"},
                    "weight": {"enum": ["Default", "Lighter", "Bolder"]},
                    "size": {"enum": ["Default", "Small", "Medium", "Large", "ExtraLarge"]},
                    "color": {
                        "enum": [
                            "Default",
                            "Dark",
                            "Light",
                            "Accent",
                            "Good",
                            "Warning",
                            "Attention",
                        ]
                    },
                    "wrap": {"type": "boolean"},
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "FactSet"}}},
            "then": {
                "required": ["facts"],
                "properties": {
                    "facts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["title", "value"],
                            "properties": {
                                "title": {"type": "string"},
                                "value": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    ],
}

TEAMS_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": ["string", "null"]},
                    "content": {
                        "type": "object",
                        "required": ["type", "version", "body"],
                        "properties": {
                            "$schema": {"type": "string"},
                            "type": {"const": "AdaptiveCard"},
                            "version": {"type": "string", "pattern": r"^1\.[0-6]$"},
                            "body": {"type": "array", "items": _CARD_ELEMENT},
                            "actions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["type", "url"],
                                    "properties": {
                                        "type": {"const": "Action.OpenUrl"},
                                        "url": {"type": "string", "pattern": "^https?://"},
                                        "title": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

SLACK_MESSAGE: dict[str, Any] = {
    "type": "object",
    "anyOf": [{"required": ["text"]}, {"required": ["blocks"]}],
    "properties": {
        "text": {"type": "string"},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["header", "section", "context", "divider", "actions"]},
                    "fields": {
                        "type": "array",
                        "maxItems": 10,
                        "items": {"properties": {"text": {"type": "string", "maxLength": 2000}}},
                    },
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": "header"}}},
                        "then": {
                            "properties": {
                                "text": {
                                    "properties": {
                                        "type": {"const": "plain_text"},
                                        "text": {"type": "string", "maxLength": 150},
                                    }
                                }
                            }
                        },
                    }
                ],
            },
        },
    },
}

ALERTMANAGER_ALERTS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "startsAt": {"type": "string", "pattern": ISO_TIME},
            "endsAt": {"type": "string", "pattern": ISO_TIME},
            "generatorURL": {"type": "string"},
        },
    },
}


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (empty: it conforms)."""
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
