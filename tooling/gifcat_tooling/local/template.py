"""Reads template.yaml the way CloudFormation would, for the local deployment: parameters, conditions,
and the intrinsic functions the template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not,
Fn::Or, Fn::Select, Fn::Split). Resources are never restated by hand: names and ARNs derive from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT = "123456789012"
REGION = "us-east-1"
NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML publishes no types
    pass


def _tag(name: str):  # type: ignore[no-untyped-def]
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


_CfnLoader.add_constructor("!Condition", lambda loader, node: {"Condition": loader.construct_scalar(node)})
for _short in ("Ref", "Sub", "GetAtt", "If", "Equals", "Not", "Or", "And", "Select", "Split", "Join"):
    _CfnLoader.add_constructor(f"!{_short}", _tag(_short if _short == "Ref" else f"Fn::{_short}"))


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)


@dataclass
class Stack:
    """A template with its parameters bound: resolves values as CloudFormation would."""

    template: dict[str, Any]
    root: Path
    name: str = "gifcat-local"
    parameters: dict[str, str] = field(default_factory=dict)
    # Attributes only the deployment knows (a table's StreamArn carries the time its stream began).
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bound: dict[str, str] = {}
        for pname, spec in self.template.get("Parameters", {}).items():
            bound[pname] = str(self.parameters.get(pname, spec.get("Default", "")))
        unknown = set(self.parameters) - set(bound)
        if unknown:
            raise ValueError(f"template.yaml has no parameters {sorted(unknown)}")
        self.parameters = bound
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.conditions: dict[str, bool] = {}
        for name, expr in self.template.get(
            "Conditions", {}
        ).items():  # in order: later ones may cite earlier
            self.conditions[name] = bool(self.resolve(expr))
        # A resource whose Condition is false is not created, as CloudFormation does.
        self.resources = {
            lid: res for lid, res in self.resources.items()
            if "Condition" not in res or self.conditions[res["Condition"]]
        }

    # Physical names and ARNs, derived the same way every time so that references need no ordering.
    def physical_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        for key in ("BucketName", "TableName", "QueueName", "FunctionName", "LogGroupName", "DashboardName",
                    "AlarmName", "ArchiveName", "Name"):
            if key in props:
                return str(self.resolve(props[key]))
        return f"{self.name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        rtype = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        return {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::Serverless::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
            "AWS::Serverless::LayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1",
            # As CloudFormation's GetAtt gives it: with the ":*" of every stream in the group.
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}",
            "AWS::Events::Archive": f"arn:aws:events:{REGION}:{ACCOUNT}:archive/{name}",
        }[rtype]

    def queue_url(self, logical_id: str, endpoint: str) -> str:
        return f"{endpoint}/{ACCOUNT}/{self.physical_name(logical_id)}"

    @staticmethod
    def queue_url_of_arn(arn: str, endpoint: str) -> str:
        return f"{endpoint}/{ACCOUNT}/{arn.rsplit(':', 1)[-1]}"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        rtype = self.resources[name]["Type"]
        if rtype in ("AWS::Serverless::StateMachine", "AWS::Serverless::LayerVersion"):
            return self.arn(name)
        if rtype == "AWS::SQS::Queue":
            return self.queue_url(name, "http://localhost")
        return self.physical_name(name)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for v in value if (r := self.resolve(v)) is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg
                if (logical_id, attr) in self.attributes:
                    return self.attributes[(logical_id, attr)]
                if attr == "StreamArn" and self.resources[logical_id]["Type"] == "AWS::DynamoDB::Table":
                    return f"{self.arn(logical_id)}/stream/not-deployed"  # read, not deployed
                if attr == "QueueName" and self.resources[logical_id]["Type"] == "AWS::SQS::Queue":
                    return self.physical_name(logical_id)
                if attr != "Arn":
                    raise ValueError(f"local deploy resolves only .Arn, a queue's .QueueName and a "
                                     f"table's .StreamArn, not "
                                     f"{logical_id}.{attr}")
                return self.arn(logical_id)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.conditions[cond] else no)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if key == "Condition":
                return self.conditions[arg]
        return {k: r for k, v in value.items() if (r := self.resolve(v)) is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(self.resolve(extra[name]))
            if "." in name:
                return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def of_type(self, rtype: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if res["Type"] == rtype]

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's properties with the template's Globals applied (environment merged)."""
        glob = dict(self.template.get("Globals", {}).get("Function", {}))
        props = dict(self.resources[logical_id].get("Properties", {}))
        env = {
            **glob.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        merged = {**glob, **props, "Environment": {"Variables": env}}
        return self.resolve(merged)
