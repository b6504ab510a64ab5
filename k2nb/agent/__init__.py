"""The reasoning loop and its parts: options, tools, executors, checks, the Trajectory tree.

Turns come from a backend (`k2nb.backends`); the loop reads their events and knows no chat format.
"""

from k2nb.agent.checks import Verdict
from k2nb.agent.executor import Executor, LocalExecutor, Observation, ToolCallRequest, ToolRegistry
from k2nb.agent.options import Budgets, ThinkOptions, with_overrides
from k2nb.agent.python_tool import PythonResult, PythonTool
from k2nb.agent.tools import Tool, ToolDefinitionError, tool
from k2nb.agent.trajectory import Check, Node, Trajectory, TrajectoryEvent
from k2nb.agent.turn import Conversation, PathResult, ThinkResult, run_turn, think

__all__ = [
    "Budgets",
    "Check",
    "Conversation",
    "Executor",
    "LocalExecutor",
    "Node",
    "Observation",
    "PathResult",
    "PythonResult",
    "PythonTool",
    "ThinkOptions",
    "ThinkResult",
    "Tool",
    "ToolCallRequest",
    "ToolDefinitionError",
    "ToolRegistry",
    "Trajectory",
    "TrajectoryEvent",
    "Verdict",
    "run_turn",
    "think",
    "tool",
    "with_overrides",
]
