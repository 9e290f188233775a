import FoundationEssentials
import Testing

/// The documentation's code is the code CI builds.
struct DocumentationTests {
    private static let root = String(#filePath.split(separator: "/Tests/")[0])

    @Test("the getting-started article shows the example package's program as it is")
    func gettingStarted() throws {
        let article = try String(contentsOfFile: Self.root + "/Sources/HPS/HPS.docc/GettingStarted.md", encoding: .utf8)
        let program = try String(contentsOfFile: Self.root + "/Examples/GettingStarted/Sources/getting-started/GettingStarted.swift",
                                 encoding: .utf8)
        // The article's "Look up keys" code block.
        let parts = article.split(separator: "### Look up keys\n\n```swift\n", maxSplits: 1, omittingEmptySubsequences: false)
        try #require(parts.count == 2, "the article has no Look up keys code block")
        let block = parts[1].split(separator: "```\n", maxSplits: 1, omittingEmptySubsequences: false)[0]
        #expect(String(block) == program)
    }
}
