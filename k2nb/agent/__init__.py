"""The reasoning loop's parts that need no model: tools, executors, the Trajectory tree."""

from k2nb.agent.executor import Executor, LocalExecutor, Observation, ToolCallRequest, ToolRegistry
from k2nb.agent.python_tool import PythonResult, PythonTool
from k2nb.agent.tools import Tool, ToolDefinitionError, tool
from k2nb.agent.trajectory import Check, Node, NodeRouting, Trajectory, TrajectoryEvent

__all__ = [
    "Check",
    "Executor",
    "LocalExecutor",
    "Node",
    "NodeRouting",
    "Observation",
    "PythonResult",
    "PythonTool",
    "Tool",
    "ToolCallRequest",
    "ToolDefinitionError",
    "ToolRegistry",
    "Trajectory",
    "TrajectoryEvent",
    "tool",
]
